/**
 * The publisher as a real process (`node services/publisher/dist/main.js`)
 * against a real NATS, for what only a process shows: the message as NATS
 * carries it (headers included), JSON log lines on stdout free of
 * credentials, 503 while NATS is down, graceful SIGTERM and configuration
 * errors at startup (exit 2). The HTTP contract is in publisher-http.test.ts.
 *
 * Run: npm run build && node --import tsx --test test/publisher-process.test.ts
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect, type NatsConnection } from "nats";
import { natsControlSkipReason, startNats, type NatsServer } from "./helpers/nats.js";
import { PUBLISHER_MAIN, missingBuild, startPublisher, type Env, type ServiceProcess } from "./helpers/procs.js";
import { API_KEY, Inbox, SECRET, assertError, assertPublishedAsIs, assertUnavailableWithoutBroker, call, mint } from "./helpers/publisher-http.js";
import { waitFor, withTimeout } from "./helpers/wait.js";

const skip = missingBuild(PUBLISHER_MAIN);

describe("publisher process on NATS", { skip }, () => {
  let nats: NatsServer;
  let pub: ServiceProcess;
  let nc: NatsConnection | undefined;
  let news: Inbox;
  const secrets: string[] = [API_KEY];
  const channelUrl = (channel: string) => `${pub.url}/v1/channels/${channel}/messages`;

  before(async () => {
    nats = await startNats();
    pub = await startPublisher({ NATS_URL: nats.url, JWT_SECRET: SECRET, PUBLISHER_API_KEY: API_KEY, DRAIN_SECONDS: "2", LOG_LEVEL: "info" });
    nc = await connect({ servers: nats.url, name: "publisher-test" });
    news = Inbox.nats(nc, "herald.ch.news");
    await nc.flush();
  });

  after(async () => {
    await nc?.close().catch(() => {});
    await pub?.stop();
    await nats?.stop();
  });

  test("POST with a JWT: 202 {id}; NATS carries the exact body bytes and Herald-Id, Herald-Published-At, traceparent", async () => {
    const token = await mint({ publish: ["news"] });
    secrets.push(token);
    await assertPublishedAsIs(channelUrl("news"), `Bearer ${token}`, ' {"hello" : "wörld", "n": [1, 2, 3]}\n', news, "herald.ch.news");
    const key = `order-1:${Date.now()}`;
    const keyed = await call(channelUrl("news"), { body: "{}", auth: `Bearer ${API_KEY}`, headers: { "idempotency-key": key } });
    assert.equal(keyed.status, 202, keyed.text);
    assert.equal((await news.next()).header("Herald-Id"), key, "the Idempotency-Key is the NATS message id");
  });

  test("stdout: JSON lines with route/status/sub, never a credential", async () => {
    assertError(await call(channelUrl("news"), { body: "{}", auth: `Bearer ${API_KEY}x` }), 401, "unauthorized");
    secrets.push(`${API_KEY}x`);
    await waitFor(() => pub.logs.some((l) => l.includes('"status":401')), { message: "the 401 logged" });
    const entries = pub.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(entries.some((e) => e["route"] === "channel" && e["status"] === 202 && e["sub"] === "user-1"));
    for (const secret of secrets) assert.ok(!pub.logs.some((l) => l.includes(secret)), "credential in logs");
    assert.ok(!pub.logs.some((l) => l.includes(SECRET)));
  });

  test("503 with Retry-After when NATS is down; /readyz turns 503", async (t) => {
    const reason = natsControlSkipReason(nats);
    if (reason) return t.skip(reason);
    await nc?.close();
    nc = undefined;
    await nats.stop();
    await assertUnavailableWithoutBroker(pub.url, channelUrl("news"), API_KEY);
  });

  test("SIGTERM: graceful exit 0", async () => {
    const exit = await pub.stop(15_000);
    assert.deepEqual(exit, { code: 0, signal: null }, pub.logs.join("\n"));
  });
});

describe("publisher configuration errors", { skip }, () => {
  /** Starts the publisher with `env` (port 0) and waits for its exit: the exit and every line it wrote. */
  async function runWith(env: Env): Promise<{ code: number | null; lines: string[]; output: string }> {
    const svc = await startPublisher({ PUBLISHER_PORT: "0", ...env }, { waitFor: "none" });
    try {
      const { code } = await withTimeout(svc.exited, 10_000, "publisher exit on a config error");
      return { code, lines: svc.logs, output: svc.logs.join("\n") };
    } finally {
      await svc.stop(1000);
    }
  }

  test("no auth configured: exit 2 naming PUBLISHER_API_KEY", async () => {
    const { code, output } = await runWith({});
    assert.equal(code, 2);
    assert.match(output, /^config error: PUBLISHER_API_KEY: /);
  });

  test("no NATS_URL: exit 2 naming NATS_URL, saying only npm start runs without a broker", async () => {
    const { code, lines, output } = await runWith({ PUBLISHER_API_KEY: API_KEY });
    assert.equal(code, 2, output);
    assert.match(output, /^config error: NATS_URL: not set: the publisher needs NATS/);
    assert.match(output, /npm start/);
    assert.equal(lines.length, 1, `one line, no stack trace: ${output}`);
  });

  test("short API key, bad port, bad prefix: exit 2 naming the variable (and never the key)", async () => {
    const short = await runWith({ PUBLISHER_API_KEY: "too-short" });
    assert.equal(short.code, 2);
    assert.match(short.output, /^config error: PUBLISHER_API_KEY: /);
    assert.ok(!short.output.includes("too-short"));

    const port = await runWith({ PUBLISHER_API_KEY: API_KEY, PUBLISHER_PORT: "80a" });
    assert.match(port.output, /^config error: PUBLISHER_PORT: /);
    const prefix = await runWith({ PUBLISHER_API_KEY: API_KEY, SUBJECT_PREFIX: "a.*" });
    assert.match(prefix.output, /^config error: SUBJECT_PREFIX: /);
    const body = await runWith({ PUBLISHER_API_KEY: API_KEY, MAX_BODY_BYTES: "0" });
    assert.match(body.output, /^config error: MAX_BODY_BYTES: /);
    const jwt = await runWith({ JWT_SECRET: "short" });
    assert.match(jwt.output, /^config error: JWT_SECRET: /);
  });
});
