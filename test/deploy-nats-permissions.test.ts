/**
 * NATS users and permissions (deploy/README.md, "NATS permissions"): the
 * `authorization` block of deploy/compose/nats/nats.conf, the same in
 * deploy/k8s/base/nats.conf, run by a real nats-server with passwords from
 * the environment, as Compose and the Kubernetes StatefulSet pass them.
 * With nats.js, as the gateway, publisher and backend users: only the
 * publisher sends control requests; the gateways answer them, send
 * heartbeats and receive channel, live and user messages; a backend
 * publishes channel and user messages only; JetStream streams, Direct Get,
 * PubAck and the revocations KV bucket work for both services.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect, createInbox, ErrorCode, StringCodec, type NatsConnection, type NatsError, type Subscription } from "nats";
import { findBinary } from "./helpers/children.js";
import { startGateway, startPublisher, missingBuild, GATEWAY_MAIN, PUBLISHER_MAIN } from "./helpers/procs.js";
import { waitFor } from "./helpers/wait.js";
import { run } from "./deploy/util.js";
import { envExample, interpolatedStack, stack } from "./deploy/compose-stack.js";
import { interpolateDeep } from "./deploy/compose.js";
import { byKind, find, podTemplate, render, type Container, type K8sObject } from "./deploy/k8s.js";
import { K8S } from "./deploy/k8s-targets.js";
import {
  authorizationBlock,
  natsConfigs,
  natsUsers,
  recipePassword,
  startNatsFromConfig,
  testPasswords,
  COMPOSE_NATS_CONF,
  type RunningNats,
} from "./deploy/nats-auth.js";

const sc = StringCodec();
const PREFIX = "herald";

interface Creds {
  user: string;
  pass: string;
}

/** user and password of a nats:// URL (percent-decoded), and where it points. */
function credsOf(url: string): Creds & { host: string } {
  const u = new URL(url);
  assert.ok(u.username && u.password, `${url.replace(/:[^:@]*@/, ":***@")} carries a user and a password`);
  return { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password), host: u.host };
}

interface Client {
  nc: NatsConnection;
  /** "publish <subject>" / "subscription <subject>" for every permissions violation the server reported. */
  violations: string[];
}

const clients: NatsConnection[] = [];

async function login(server: RunningNats, creds: Creds, name: string): Promise<Client> {
  // nats.js takes credentials as options: it drops the user:password@ of a
  // server URL (see the last test).
  const nc = await connect({ servers: server.url, user: creds.user, pass: creds.pass, name, reconnect: false, timeout: 5000 });
  clients.push(nc);
  const violations: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error" && s.permissionContext) violations.push(`${s.permissionContext.operation} ${s.permissionContext.subject}`);
    }
  })();
  return { nc, violations };
}

interface Received {
  subject: string;
  data: string;
}

function collect(c: Client, subject: string): { got: Received[]; sub: Subscription } {
  const got: Received[] = [];
  const sub = c.nc.subscribe(subject, { callback: (err, m) => !err && got.push({ subject: m.subject, data: sc.decode(m.data) }) });
  return { got, sub };
}

async function denied(c: Client, op: "publish" | "subscription", subject: string): Promise<void> {
  await c.nc.flush();
  await waitFor(() => c.violations.includes(`${op} ${subject}`), { timeoutMs: 3000, message: `a permissions violation for ${op} to ${subject}, got ${JSON.stringify(c.violations)}` });
}

// --- the committed configuration ------------------------------------------------

const configs = natsConfigs();
const block = authorizationBlock(configs.compose);

test("nats permissions: the authorization block is the same in Compose and Kubernetes; three users, passwords from the environment", () => {
  assert.equal(authorizationBlock(configs.k8s), block, "deploy/k8s/base/nats.conf and deploy/compose/nats/nats.conf grant the same");
  const users = natsUsers(block);
  assert.deepEqual(users.map((u) => u.user), ["gateway", "publisher", "backend"]);
  const vars = users.map((u) => u.passwordVar);
  // Compose: the nats service gets each variable from .env, required.
  const nats = stack().services["nats"]!;
  const env = nats["environment"] as Record<string, string>;
  for (const v of vars) assert.match(env[v] ?? "", new RegExp(`^\\$\\{${v}:\\?[^}]*\\}$`), `compose nats: ${v} is a required .env variable`);
  assert.deepEqual((nats["command"] as string[]).slice(0, 2), ["--config", "/etc/nats/herald.conf"]);
  assert.ok((nats["volumes"] as string[]).includes("./nats/nats.conf:/etc/nats/herald.conf:ro"), "compose mounts nats/nats.conf where --config reads it");
  // Kubernetes: the NATS container gets each variable from herald-secrets.
  for (const target of [`${K8S}/base`, `${K8S}/overlays/dev`, `${K8S}/overlays/production`]) {
    const c = natsContainer(render(target));
    for (const v of vars) {
      const ref = c.env?.find((e) => e.name === v)?.valueFrom?.secretKeyRef;
      assert.match(ref?.name ?? "", /^herald-secrets(-[a-z0-9]+)?$/, `${target}: ${v} from the Secret herald-secrets`);
    }
  }
  // Subjects are written for SUBJECT_PREFIX=herald: the services' prefix must match.
  assert.equal(envExample().get("SUBJECT_PREFIX"), PREFIX);
  for (const svc of ["gateway", "publisher"]) {
    assert.equal((interpolatedStack().services[svc]!["environment"] as Record<string, string>)["SUBJECT_PREFIX"], PREFIX);
  }
  const base = render(`${K8S}/base`);
  for (const cm of byKind(base, "ConfigMap").filter((c) => /^herald-(gateway|publisher)-config/.test(c.metadata.name))) {
    assert.equal((cm["data"] as Record<string, string>)["SUBJECT_PREFIX"], PREFIX, cm.metadata.name);
  }
  for (const subject of block.matchAll(/"([^"]+)"/g)) {
    assert.match(subject[1]!, /^(herald\.|_INBOX\.|\$JS\.|\$KV\.|>$)/, `${subject[1]}: a Herald subject (prefix ${PREFIX}), an inbox or JetStream`);
  }
});

test("nats permissions: NATS reads a password that looks like a number as one; the documented recipe gives a string", (t) => {
  const bin = findBinary("nats-server");
  if (!bin) return t.skip("nats-server not installed");
  const check = (password: string) => {
    const env: Record<string, string> = { ...process.env } as Record<string, string>;
    for (const u of natsUsers(block)) env[u.passwordVar] = recipePassword();
    env[natsUsers(block)[0]!.passwordVar] = password;
    return run(bin, ["-c", COMPOSE_NATS_CONF, "-t"], { env });
  };
  for (const bad of ["1234", "3e5a9f"]) {
    const r = check(bad);
    assert.ok(r.status !== 0 || /interface conversion|could not be parsed/.test(r.stdout + r.stderr), `${bad} is refused: ${r.stdout}${r.stderr}`);
  }
  for (let i = 0; i < 5; i++) {
    const r = check(recipePassword());
    assert.equal(r.status, 0, `p + hex is valid: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /is valid/);
  }
});

function natsContainer(objs: K8sObject[]): Container {
  const sts = find(objs, "StatefulSet", "nats");
  assert.ok(sts, "StatefulSet nats");
  return podTemplate(sts)!.spec.containers.find((c) => c.name === "nats")!;
}

// --- Compose: a real nats-server with deploy/compose/nats/nats.conf ----------------

let server: RunningNats | undefined;
let composeCreds: { gateway: Creds; publisher: Creds; backend: Creds } | undefined;
const natsBin = findBinary("nats-server");

before(async () => {
  if (!natsBin) return;
  // .env as an operator writes it: .env.example with passwords by the recipe.
  const env = envExample();
  for (const [k, v] of Object.entries(testPasswords(block))) env.set(k, v);
  const doc = interpolateDeep(stack().doc, env) as { services: Record<string, Record<string, unknown>> };
  const natsEnv = doc.services["nats"]!["environment"] as Record<string, string>;
  server = await startNatsFromConfig(natsBin, configs.compose, natsEnv);
  const url = (svc: string) => credsOf((doc.services[svc]!["environment"] as Record<string, string>)["NATS_URL"]!);
  const gw = url("gateway");
  const pub = url("publisher");
  for (const c of [gw, pub]) assert.equal(c.host, "nats:4222", "the services reach the compose service nats on 4222");
  composeCreds = { gateway: gw, publisher: pub, backend: { user: "backend", pass: natsEnv["NATS_BACKEND_PASSWORD"]! } };
});

after(async () => {
  await Promise.all(clients.map((nc) => nc.close().catch(() => {})));
  await server?.stop();
});

function need(t: { skip(msg: string): void }): { server: RunningNats; creds: NonNullable<typeof composeCreds> } | undefined {
  if (!server || !composeCreds) {
    t.skip("nats-server not installed");
    return undefined;
  }
  return { server, creds: composeCreds };
}

test("nats permissions (compose): no connection without credentials; each service's NATS_URL logs in as its user", async (t) => {
  const ctx = need(t);
  if (!ctx) return;
  await assert.rejects(connect({ servers: ctx.server.url, reconnect: false }), (e: NatsError) => e.code === ErrorCode.AuthorizationViolation, "anonymous");
  await assert.rejects(
    connect({ servers: ctx.server.url, user: "gateway", pass: ctx.creds.publisher.pass, reconnect: false }),
    (e: NatsError) => e.code === ErrorCode.AuthorizationViolation,
    "gateway with another user's password",
  );
  assert.equal(ctx.creds.gateway.user, "gateway");
  assert.equal(ctx.creds.publisher.user, "publisher");
  for (const who of ["gateway", "publisher", "backend"] as const) {
    const c = await login(ctx.server, ctx.creds[who], `login-${who}`);
    assert.equal(c.nc.isClosed(), false);
  }
  const connz = (await (await fetch(`${ctx.server.monitorUrl}/connz?auth=true`)).json()) as { connections: { name: string; authorized_user?: string }[] };
  for (const who of ["gateway", "publisher", "backend"]) {
    assert.equal(connz.connections.find((c) => c.name === `login-${who}`)?.authorized_user, who, `monitoring (no credentials) shows ${who}`);
  }
});

test("nats permissions (compose): only the publisher sends control requests; every gateway receives them", async (t) => {
  const ctx = need(t);
  if (!ctx) return;
  const [gw1, gw2, pub, backend] = await Promise.all([
    login(ctx.server, ctx.creds.gateway, "gw-1"),
    login(ctx.server, ctx.creds.gateway, "gw-2"),
    login(ctx.server, ctx.creds.publisher, "pub"),
    login(ctx.server, ctx.creds.backend, "backend"),
  ]);
  const a = collect(gw1, `${PREFIX}.ctl.>`);
  const b = collect(gw2, `${PREFIX}.ctl.>`);
  await Promise.all([gw1.nc.flush(), gw2.nc.flush()]);
  pub.nc.publish(`${PREFIX}.ctl.x`, sc.encode("from-publisher"));
  await waitFor(() => a.got.length === 1 && b.got.length === 1, { timeoutMs: 3000, message: "both gateways receive the publisher's control request" });

  gw2.nc.publish(`${PREFIX}.ctl.x`, sc.encode("from-gateway"));
  await denied(gw2, "publish", `${PREFIX}.ctl.x`);
  backend.nc.publish(`${PREFIX}.ctl.x`, sc.encode("from-backend"));
  await denied(backend, "publish", `${PREFIX}.ctl.x`);
  // Anything that got through would arrive before this.
  pub.nc.publish(`${PREFIX}.ctl.x`, sc.encode("marker"));
  await waitFor(() => a.got.length >= 2 && b.got.length >= 2, { timeoutMs: 3000 });
  assert.deepEqual(a.got.map((m) => m.data), ["from-publisher", "marker"]);
  assert.deepEqual(b.got.map((m) => m.data), ["from-publisher", "marker"]);
  assert.deepEqual(pub.violations, []);
});

test("nats permissions (compose): gateways answer a control request through the publisher's inbox", async (t) => {
  const ctx = need(t);
  if (!ctx) return;
  const [gw1, gw2, pub] = await Promise.all([
    login(ctx.server, ctx.creds.gateway, "gw-a"),
    login(ctx.server, ctx.creds.gateway, "gw-b"),
    login(ctx.server, ctx.creds.publisher, "pub-req"),
  ]);
  for (const [gw, id] of [[gw1, "a"], [gw2, "b"]] as const) {
    gw.nc.subscribe(`${PREFIX}.ctl.info`, { callback: (err, m) => !err && m.respond(sc.encode(`gateway-${id}`)) });
    await gw.nc.flush();
  }
  // One answer: nats.js' request (muxed _INBOX subscription).
  const one = await pub.nc.request(`${PREFIX}.ctl.info`, sc.encode("{}"), { timeout: 3000 });
  assert.match(sc.decode(one.data), /^gateway-[ab]$/);
  // Every gateway's answer: an inbox of the publisher's own.
  const inbox = createInbox();
  const answers = collect(pub, inbox);
  await pub.nc.flush();
  pub.nc.publish(`${PREFIX}.ctl.info`, sc.encode("{}"), { reply: inbox });
  await waitFor(() => answers.got.length === 2, { timeoutMs: 3000, message: "both gateways answer" });
  assert.deepEqual(answers.got.map((m) => m.data).sort(), ["gateway-a", "gateway-b"]);
  assert.deepEqual([...gw1.violations, ...gw2.violations, ...pub.violations], []);
});

test("nats permissions (compose): heartbeats go from gateways to the publisher; channel and user messages reach the gateways", async (t) => {
  const ctx = need(t);
  if (!ctx) return;
  const [gw, pub, backend] = await Promise.all([
    login(ctx.server, ctx.creds.gateway, "gw-hb"),
    login(ctx.server, ctx.creds.publisher, "pub-hb"),
    login(ctx.server, ctx.creds.backend, "backend-ch"),
  ]);
  const hello = collect(pub, `${PREFIX}.gw.>`);
  const channels = collect(gw, `${PREFIX}.ch.>`);
  const users = collect(gw, `${PREFIX}.user.>`);
  await Promise.all([pub.nc.flush(), gw.nc.flush()]);
  gw.nc.publish(`${PREFIX}.gw.hello`, sc.encode("gw-hb"));
  await waitFor(() => hello.got.length === 1, { timeoutMs: 3000, message: "the publisher hears the heartbeat" });
  assert.deepEqual(hello.got[0], { subject: `${PREFIX}.gw.hello`, data: "gw-hb" });
  // Presence is shared between gateways on <prefix>.pres.>: gateways only.
  const peer = await login(ctx.server, ctx.creds.gateway, "gw-peer");
  const presence = collect(peer, `${PREFIX}.pres.>`);
  await peer.nc.flush();
  gw.nc.publish(`${PREFIX}.pres.delta`, sc.encode("changes"));
  await waitFor(() => presence.got.length === 1, { timeoutMs: 3000, message: "a gateway hears another's presence changes" });
  backend.nc.publish(`${PREFIX}.pres.delta`, sc.encode("forged"));
  await denied(backend, "publish", `${PREFIX}.pres.delta`);
  // SSE commands go from the gateway that took the POST to the one holding the stream: gateways only.
  const commands = collect(peer, `${PREFIX}.sse.>`);
  await peer.nc.flush();
  gw.nc.publish(`${PREFIX}.sse.route123`, sc.encode("frames"));
  await waitFor(() => commands.got.length === 1, { timeoutMs: 3000, message: "a gateway hears commands for its streams" });
  backend.nc.publish(`${PREFIX}.sse.route123`, sc.encode("forged"));
  await denied(backend, "publish", `${PREFIX}.sse.route123`);
  await peer.nc.close();

  backend.nc.publish(`${PREFIX}.ch.a`, sc.encode("from-backend"));
  pub.nc.publish(`${PREFIX}.ch.a`, sc.encode("from-publisher"));
  gw.nc.publish(`${PREFIX}.ch.a`, sc.encode("from-client"));
  backend.nc.publish(`${PREFIX}.user.alice`, sc.encode("dm-backend"));
  pub.nc.publish(`${PREFIX}.user.alice`, sc.encode("dm-publisher"));
  await waitFor(() => channels.got.length === 3 && users.got.length === 2, { timeoutMs: 3000, message: "channel and user messages arrive" });
  assert.deepEqual(channels.got.map((m) => m.data).sort(), ["from-backend", "from-client", "from-publisher"]);

  // What the contract does not grant.
  gw.nc.publish(`${PREFIX}.user.alice`, sc.encode("dm-gateway"));
  await denied(gw, "publish", `${PREFIX}.user.alice`);
  pub.nc.publish(`${PREFIX}.gw.hello`, sc.encode("forged"));
  await denied(pub, "publish", `${PREFIX}.gw.hello`);
  backend.nc.publish(`${PREFIX}.gw.hello`, sc.encode("forged"));
  await denied(backend, "publish", `${PREFIX}.gw.hello`);
  backend.nc.subscribe(`${PREFIX}.ch.>`);
  await denied(backend, "subscription", `${PREFIX}.ch.>`);
  pub.nc.subscribe(`${PREFIX}.ctl.>`);
  await denied(pub, "subscription", `${PREFIX}.ctl.>`);
  pub.nc.publish(`${PREFIX}.gw.hello`, sc.encode("x"));
  assert.equal(hello.got.length, 1, "no forged heartbeat arrived");
  assert.equal(users.got.length, 2, "no direct message from the gateway");
});

test("nats permissions (compose): both services create and update history streams, publish with PubAck, read with Direct Get, receive the RePublish", async (t) => {
  const ctx = need(t);
  if (!ctx) return;
  const [gw, pub, backend] = await Promise.all([
    login(ctx.server, ctx.creds.gateway, "gw-js"),
    login(ctx.server, ctx.creds.publisher, "pub-js"),
    login(ctx.server, ctx.creds.backend, "backend-js"),
  ]);
  const [gwm, pubm] = await Promise.all([gw.nc.jetstreamManager({ timeout: 5000 }), pub.nc.jetstreamManager({ timeout: 5000 })]);
  const stream = (ns: string) => ({
    name: `HERALD_${ns}`,
    subjects: [`${PREFIX}.ch.${ns}`, `${PREFIX}.ch.${ns}.>`],
    allow_direct: true,
    max_msgs_per_subject: 100,
    republish: { src: `${PREFIX}.ch.>`, dest: `${PREFIX}.live.>` },
  });
  await pubm.streams.add(stream("news"));
  await gwm.streams.add(stream("sports"));
  // Either one updates (or re-creates identically) the other's stream.
  await gwm.streams.update("HERALD_news", { ...stream("news"), max_msgs_per_subject: 50 });
  await pubm.streams.update("HERALD_sports", { ...stream("sports"), max_msgs_per_subject: 50 });
  await gwm.streams.add({ ...stream("news"), max_msgs_per_subject: 50 });
  const live = collect(gw, `${PREFIX}.live.>`);
  await gw.nc.flush();

  const ack = await pub.nc.jetstream({ timeout: 3000 }).publish(`${PREFIX}.ch.news.eu`, sc.encode("stored-by-publisher"));
  assert.equal(ack.stream, "HERALD_news");
  const gwAck = await gw.nc.jetstream({ timeout: 3000 }).publish(`${PREFIX}.ch.sports`, sc.encode("stored-by-gateway"));
  assert.equal(gwAck.stream, "HERALD_sports");
  backend.nc.publish(`${PREFIX}.ch.sports`, sc.encode("stored-by-backend"));
  await waitFor(() => live.got.length === 3, { timeoutMs: 3000, message: `the RePublish of three stored messages, got ${JSON.stringify(live.got)}` });
  assert.deepEqual(live.got.map((m) => m.subject).sort(), [`${PREFIX}.live.news.eu`, `${PREFIX}.live.sports`, `${PREFIX}.live.sports`]);

  // Direct Get as packages/broker/src/nats-history.ts reads history (nats.js has it, its types do not).
  type Direct = { direct: { getMessage(stream: string, q: { seq: number } | { last_by_subj: string }): Promise<{ subject: string; data: Uint8Array }> } };
  for (const jsm of [gwm, pubm] as unknown as Direct[]) {
    const m = await jsm.direct.getMessage("HERALD_sports", { last_by_subj: `${PREFIX}.ch.sports` });
    assert.equal(sc.decode(m.data), "stored-by-backend");
    assert.equal((await jsm.direct.getMessage("HERALD_news", { seq: ack.seq })).subject, `${PREFIX}.ch.news.eu`);
  }
  assert.deepEqual([...gw.violations, ...pub.violations, ...backend.violations], []);
  // Out of the way of the services' own HERALD stream (last test).
  for (const name of ["HERALD_news", "HERALD_sports"]) await pubm.streams.delete(name);
});

test("nats permissions (compose): the revocations KV bucket: both open it, the publisher writes, gateways watch and cannot write", async (t) => {
  const ctx = need(t);
  if (!ctx) return;
  const [gw, pub] = await Promise.all([login(ctx.server, ctx.creds.gateway, "gw-kv"), login(ctx.server, ctx.creds.publisher, "pub-kv")]);
  // Whichever starts first creates the bucket; the other binds to it.
  const gwKv = await gw.nc.jetstream({ timeout: 3000 }).views.kv("HERALD_REVOCATIONS", { history: 1 });
  const pubKv = await pub.nc.jetstream({ timeout: 3000 }).views.kv("HERALD_REVOCATIONS", { history: 1 });
  const seen: string[] = [];
  const watch = await gwKv.watch();
  void (async () => {
    for await (const e of watch) seen.push(`${e.operation} ${e.key} ${sc.decode(e.value)}`);
  })();
  await pubKv.put("jti-1", sc.encode("revoked"));
  await waitFor(() => seen.includes("PUT jti-1 revoked"), { timeoutMs: 3000, message: `the gateway's watch sees the revocation, got ${JSON.stringify(seen)}` });
  assert.equal(sc.decode((await pubKv.get("jti-1"))!.value), "revoked");
  assert.equal(sc.decode((await gwKv.get("jti-1"))!.value), "revoked");

  await assert.rejects(gwKv.put("jti-2", sc.encode("forged")), "a gateway cannot write a revocation");
  await denied(gw, "publish", "$KV.HERALD_REVOCATIONS.jti-2");
  assert.equal(await pubKv.get("jti-2"), null);
  watch.stop();

  // A watch replaying more than JetStream's flow-control window (about 2 MB
  // here): the gateway must answer the server's flow-control requests
  // ($JS.FC.>), or its watch stalls after ~250 of these entries.
  const value = new Uint8Array(8 * 1024);
  for (let i = 0; i < 6; i++) await Promise.all(Array.from({ length: 100 }, (_, j) => pubKv.put(`burst.${i}.${j}`, value)));
  const replay = await gwKv.watch({ key: "burst.>" });
  let replayed = 0;
  const done = (async () => {
    for await (const _ of replay) if (++replayed === 600) break;
  })();
  await waitFor(() => replayed === 600, { timeoutMs: 10_000, message: "600 burst entries through the gateway's watch" }).catch((err: Error) => {
    throw new Error(`${err.message}: got ${replayed}, violations ${JSON.stringify(gw.violations)}`);
  });
  replay.stop();
  await done;
  assert.deepEqual(gw.violations, ["publish $KV.HERALD_REVOCATIONS.jti-2"]);
  assert.deepEqual(pub.violations, []);
});

// --- Kubernetes: the base's nats.conf with the dev overlay's Secret --------------

test("nats permissions (k8s): the dev Secret's passwords, as the StatefulSet passes them, log in the services with their NATS_URL", async (t) => {
  if (!natsBin) return t.skip("nats-server not installed");
  const objs = render(`${K8S}/overlays/dev`);
  const secret = byKind(objs, "Secret").find((s) => s.metadata.name.startsWith("herald-secrets"))!;
  const data = Object.fromEntries(Object.entries(secret["data"] as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
  const fromSecret = (c: Container, name: string): string => {
    const e = c.env?.find((x) => x.name === name);
    assert.ok(e, `${c.name}: env ${name}`);
    if (e.value !== undefined) return e.value.replace(/\$\(([A-Z0-9_]+)\)/g, (_, v: string) => fromSecret(c, v));
    const ref = e.valueFrom?.secretKeyRef;
    assert.ok(ref && ref.name === secret.metadata.name && ref.key in data, `${c.name}: ${name} from herald-secrets/${ref?.key}`);
    return data[ref.key]!;
  };
  const natsC = natsContainer(objs);
  const env: Record<string, string> = { SERVER_NAME: "nats-0" };
  for (const u of natsUsers(block)) env[u.passwordVar] = fromSecret(natsC, u.passwordVar);
  const cm = byKind(objs, "ConfigMap").find((c) => c.metadata.name.startsWith("nats-config"))!;
  // A cluster member without its peers: no JetStream meta leader, but clients are served.
  const k8sServer = await startNatsFromConfig(natsBin, (cm["data"] as Record<string, string>)["nats.conf"]!, env, "/healthz?js-enabled-only=true");
  t.after(() => k8sServer.stop());
  const creds: Record<string, Creds> = {};
  for (const [deployment, container] of [["herald-gateway", "gateway"], ["herald-publisher", "publisher"]] as const) {
    const c = podTemplate(find(objs, "Deployment", deployment)!)!.spec.containers.find((x) => x.name === container)!;
    const url = credsOf(fromSecret(c, "NATS_URL"));
    assert.equal(url.host, "nats:4222", `${deployment}: the nats Service`);
    assert.equal(url.user, container);
    creds[container] = url;
  }
  const gw = await login(k8sServer, creds["gateway"]!, "k8s-gw");
  const pub = await login(k8sServer, creds["publisher"]!, "k8s-pub");
  const ctl = collect(gw, `${PREFIX}.ctl.>`);
  await gw.nc.flush();
  pub.nc.publish(`${PREFIX}.ctl.disconnect`, sc.encode("x"));
  await waitFor(() => ctl.got.length === 1, { timeoutMs: 3000 });
  gw.nc.publish(`${PREFIX}.ctl.disconnect`, sc.encode("x"));
  await denied(gw, "publish", `${PREFIX}.ctl.disconnect`);
  await assert.rejects(connect({ servers: k8sServer.url, reconnect: false }), (e: NatsError) => e.code === ErrorCode.AuthorizationViolation, "anonymous");
  await Promise.all([gw.nc.close(), pub.nc.close()]);
});

// --- the services themselves -----------------------------------------------------

test(
  "nats permissions: the gateway and the publisher become ready with the credentials in NATS_URL",
  async (t) => {
    const ctx = need(t);
    if (!ctx) return;
    const missing = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN);
    if (missing) return t.skip(missing);
    const hostPort = new URL(ctx.server.url).host;
    const url = (c: Creds) => `nats://${encodeURIComponent(c.user)}:${encodeURIComponent(c.pass)}@${hostPort}`;
    const JWT_SECRET = "nats-permissions-test-secret-0123456789abcdef";
    const results = await Promise.allSettled([
      startGateway({ NATS_URL: url(ctx.creds.gateway), JWT_SECRET }, { timeoutMs: 8000 }),
      startPublisher({ NATS_URL: url(ctx.creds.publisher), JWT_SECRET, PUBLISHER_API_KEY: "nats-permissions-test-key" }, { timeoutMs: 8000 }),
    ]);
    await Promise.all(results.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
    for (const r of results) if (r.status === "rejected") throw r.reason;
  },
);
