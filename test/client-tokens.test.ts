/**
 * @herald/client token timing, driven through a scripted socket with mocked
 * timers: a 30-day token is refreshed when due (setTimeout's 2^31-1 ms cap),
 * and a token provider that never answers fails the attempt and is retried.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldClient, type HeraldError } from "@herald/client";
import { ScriptedSocket, flushAsync, jwt, mockClock, nextSocket, until } from "./helpers/scripted-socket.js";

describe("timers fed from token times", () => {
  test("a 30-day token is refreshed once due, not after ~1 ms (setTimeout caps delays at 2^31-1 ms)", async (t) => {
    mockClock(t);
    ScriptedSocket.all = [];
    let calls = 0;
    const provider = () => {
      calls++;
      const iat = Math.floor(Date.now() / 1000);
      return jwt({ iat, exp: iat + 30 * 86_400 });
    };
    const client = new HeraldClient({ url: "ws://scripted/ws", token: provider, WebSocket: ScriptedSocket, pingIntervalMs: 0 });
    const connected = client.connect();
    await nextSocket(1);
    await connected;
    assert.equal(calls, 1);
    // Past the 2^31-1 ms (~24.8 days) mark: an uncapped timer would have fired long ago.
    t.mock.timers.tick(2 ** 31 + 1_000);
    await flushAsync();
    assert.equal(calls, 1, "no refresh before the token is due");
    assert.equal(ScriptedSocket.all.length, 1, "no refresh connection before the token is due");
    // Due: exp - refreshLeadMs (30 s).
    t.mock.timers.tick(30 * 86_400_000 - 30_000 - (2 ** 31 + 1_000));
    await flushAsync();
    assert.equal(calls, 2, "refreshed once due");
    assert.equal(ScriptedSocket.all.length, 2, "the refresh connection is opened");
    client.close();
  });
});

describe("token provider timeout", () => {
  test("a provider that never answers fails the attempt with token_provider_failed and is retried with backoff", async () => {
    ScriptedSocket.all = [];
    let calls = 0;
    const provider = () => {
      calls++;
      return calls === 1 ? new Promise<string>(() => {}) : jwt({ exp: Math.floor(Date.now() / 1000) + 3600 });
    };
    const client = new HeraldClient({
      url: "ws://scripted/ws",
      token: provider,
      WebSocket: ScriptedSocket,
      pingIntervalMs: 0,
      tokenTimeoutMs: 50,
      backoff: { baseMs: 10, maxMs: 10 },
    });
    const errors: HeraldError[] = [];
    client.on("error", (e) => errors.push(e));
    const states: string[] = [];
    client.on("state", (s) => states.push(s.state));
    const connected = client.connect();
    await until(() => ScriptedSocket.all.length === 1, "a socket after the provider timed out");
    await nextSocket(1);
    await connected;
    assert.equal(calls, 2);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, "token_provider_failed");
    assert.match(errors[0]?.message ?? "", /did not answer within 50 ms/);
    assert.deepEqual(states, ["connecting", "reconnecting", "connected"]);
    client.close();
  });
});
