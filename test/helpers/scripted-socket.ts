/**
 * For the @herald/client unit tests (client-*.test.ts): a scripted WebSocket
 * that records what the client sends and replays herald.v1 frames exactly as
 * docs/protocol.md specifies them, and small helpers to drive it (with mocked
 * timers where time matters). Behaviour against the real gateway is covered
 * by client-sdk*.test.ts.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { HeraldClient, type HeraldClientOptions, type HeraldMessage, type WebSocketLike } from "@herald/client";

export class ScriptedSocket implements WebSocketLike {
  static last: ScriptedSocket | undefined;
  /** Every socket created, oldest first (reset by tests that count them). */
  static all: ScriptedSocket[] = [];
  readyState = 0;
  protocol = "";
  binaryType = "blob";
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: unknown) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: Array<Record<string, unknown>> = [];
  /** Date.now() of every send (mockable). */
  sentAt: number[] = [];
  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    ScriptedSocket.last = this;
    ScriptedSocket.all.push(this);
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
    this.sentAt.push(Date.now());
  }
  close(code = 1000, reason = ""): void {
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
  // server side
  open(): void {
    this.readyState = 1;
    this.protocol = "herald.v1";
    this.onopen?.({});
  }
  push(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  lastSent(type: string): Record<string, unknown> {
    const f = [...this.sent].reverse().find((x) => x["type"] === type);
    assert.ok(f, `client sent no ${type} frame (sent: ${JSON.stringify(this.sent)})`);
    return f;
  }
  sentOf(type: string): Array<Record<string, unknown>> {
    return this.sent.filter((x) => x["type"] === type);
  }
}

/** Lets pending promise callbacks and setImmediate callbacks run (works with mocked timers). */
export async function flushAsync(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Tracks whether a promise settled, without awaiting it (a rejection counts as handled). */
export function track<T>(p: Promise<T>): { status: "pending" | "resolved" | "rejected"; error?: unknown } {
  const t: { status: "pending" | "resolved" | "rejected"; error?: unknown } = { status: "pending" };
  p.then(
    () => (t.status = "resolved"),
    (err: unknown) => {
      t.status = "rejected";
      t.error = err;
    },
  );
  return t;
}

/** Polls `cond` on real timers until it holds; fails after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An unsigned JWT-shaped token (the client only reads exp/iat; it never verifies). */
export function jwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "u1", ...claims })}.sig`;
}

/** Waits for the next socket the client creates (after its async token step), opens it and sends the welcome. */
export async function nextSocket(count: number, welcome = true): Promise<ScriptedSocket> {
  for (let i = 0; i < 20 && ScriptedSocket.all.length < count; i++) await new Promise((r) => setImmediate(r));
  const sock = ScriptedSocket.all[count - 1];
  assert.ok(sock, `socket #${count} was not created (have ${ScriptedSocket.all.length})`);
  if (welcome) {
    sock.open();
    sock.push({ type: "welcome", sub: "u1", connection: `c${count}` });
  }
  return sock;
}

/** Mocks setTimeout/setInterval/Date for this test (setImmediate and microtasks stay real). */
export function mockClock(t: TestContext, now = 1_700_000_000_000): void {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now });
}

export async function scriptedClient(): Promise<{ client: HeraldClient; sock: ScriptedSocket; got: HeraldMessage[] }> {
  const client = new HeraldClient({ url: "ws://scripted/ws", token: "t.e.st", WebSocket: ScriptedSocket, pingIntervalMs: 0 });
  ScriptedSocket.last = undefined;
  const connected = client.connect();
  // The socket is created after the (possibly async) token step.
  for (let i = 0; i < 10 && !ScriptedSocket.last; i++) await new Promise((r) => setImmediate(r));
  const sock = ScriptedSocket.last as unknown as ScriptedSocket;
  assert.deepEqual(sock.protocols, ["herald.v1", "bearer.t.e.st"]);
  sock.open();
  sock.push({ type: "welcome", sub: "u1", connection: "c1" });
  await connected;
  const got: HeraldMessage[] = [];
  client.on("message", (m) => got.push(m));
  return { client, sock, got };
}

/**
 * On mocked timers: a client whose provider hands out 60 s tokens, connected
 * on scripted socket #1 with `channels` confirmed. Ticking 48 s (exp - 20 % of
 * the lifetime) makes the refresh due: socket #2 opens.
 */
export async function refreshingClient(t: TestContext, channels: string[], options: Partial<HeraldClientOptions> = {}): Promise<{ client: HeraldClient; sock1: ScriptedSocket }> {
  mockClock(t);
  ScriptedSocket.all = [];
  const provider = () => {
    const iat = Math.floor(Date.now() / 1000);
    return jwt({ iat, exp: iat + 60 });
  };
  const client = new HeraldClient({ url: "ws://scripted/ws", token: provider, WebSocket: ScriptedSocket, pingIntervalMs: 0, ...options });
  const connected = client.connect();
  const sock1 = await nextSocket(1);
  await connected;
  const subs = channels.map((c) => client.subscribe(c));
  for (const f of sock1.sentOf("subscribe")) sock1.push({ type: "subscribed", channel: f["channel"], id: f["id"] });
  await Promise.all(subs);
  return { client, sock1 };
}
