/**
 * @herald/client against real gateway processes: token refresh before exp
 * (make before break), a new token after 4001, and the terminal endings of a
 * static token (4001, HTTP 401), plus a provider whose first token is refused.
 *
 * Every wait is on an event or a bounded poll; every process is stopped in `after`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldError, type StateChange } from "@herald/client";
import { WS, clientGatewayHarness, countingWebSocket, inbox, nextEvent } from "./helpers/client-gateway.js";
import { scrape } from "./helpers/metrics.js";
import { GATEWAY_MAIN, PUBLISHER_MAIN, missingBuild, uniqueName, waitFor } from "./helpers/procs.js";
import { hsToken, nowSeconds } from "./helpers/tokens.js";

const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN);

describe("@herald/client against a real gateway: tokens", { skip }, () => {
  const { client, gateway, allChannels } = clientGatewayHarness();

  test("token provider: refreshed before exp without dropping the subscription; old connections are closed", async () => {
    const gw = await gateway();
    const channel = uniqueName("refresh");
    const sub = uniqueName("short-lived");
    let calls = 0;
    // 3-second tokens: the gateway closes a socket with 4001 the moment exp passes.
    const provider = async () => {
      calls++;
      return hsToken({ sub, channels: [">"], exp: nowSeconds() + 3 });
    };
    const a = client(gw.wsUrl, provider);
    const states: StateChange[] = [];
    a.on("state", (s) => states.push(s));
    const errors: HeraldError[] = [];
    a.on("error", (e) => errors.push(e));
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
    const b = client(gw.wsUrl, await allChannels());
    await b.connect();

    // Two refreshes (three tokens) spanning more than one token lifetime.
    let tokens = 0;
    a.on("token", () => tokens++);
    await waitFor(() => tokens >= 2, { timeoutMs: 15_000, intervalMs: 50, message: "two token refreshes" });
    assert.ok(calls >= 3, `provider called ${calls} times`);
    await b.publish(channel, "after two refreshes");
    await waitFor(() => box.messages.some((m) => m.data === "after two refreshes"), { message: "message after refreshes" });
    assert.deepEqual(
      states.map((s) => s.state),
      ["connecting", "connected"],
      `never reconnected: ${JSON.stringify(states.map((s) => [s.state, s.error?.code, s.error?.closeCode]))}`,
    );
    assert.deepEqual(errors, []);
    // Only the current connection of `a` and `b` stay open on the gateway.
    await waitFor(async () => (await scrape(gw.url)).get("herald_connections_open") === 2, { message: "two open connections" });
    const closes = await scrape(gw.url);
    assert.equal(closes.get("herald_disconnects_total", { code: "4001" }) ?? 0, 0, "no socket ran into 4001");
  });

  test("token provider: on 4001 the provider is called and the client reconnects and resubscribes", async () => {
    const gw = await gateway();
    const channel = uniqueName("expired");
    const sub = uniqueName("slow-provider");
    let calls = 0;
    let releaseRefresh: () => void = () => {};
    const refreshGate = new Promise<void>((r) => (releaseRefresh = r));
    const provider = async () => {
      calls++;
      if (calls === 1) return hsToken({ sub, channels: [">"], exp: nowSeconds() + 2 });
      // The scheduled refresh hangs until the gateway has closed with 4001.
      if (calls === 2) await refreshGate;
      return hsToken({ sub, channels: [">"], exp: nowSeconds() + 3600 });
    };
    const a = client(gw.wsUrl, provider);
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
    const expired = await nextEvent(a, "state", (s) => s.state === "reconnecting", 10_000);
    assert.equal(expired.error?.closeCode, 4001);
    assert.equal(expired.error?.code, "token_expired");
    const resub = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed);
    releaseRefresh();
    await resub;
    assert.ok(calls >= 3, `provider called again after 4001 (${calls} calls)`);
    assert.equal(a.state, "connected");
    const b = client(gw.wsUrl, await allChannels());
    await b.connect();
    await b.publish(channel, "after 4001");
    await waitFor(() => box.messages.some((m) => m.data === "after 4001"), { message: "message after 4001" });
  });

  test("terminal: a static token that expires (4001) closes the client with a clear error and no reconnect", async () => {
    const gw = await gateway();
    const counting = countingWebSocket();
    const token = await hsToken({ sub: uniqueName("static"), channels: [">"], exp: nowSeconds() + 2 });
    const a = client(gw.wsUrl, token, { WebSocket: counting.WS, backoff: { baseMs: 1, maxMs: 1 } });
    const errors: HeraldError[] = [];
    a.on("error", (e) => errors.push(e));
    await a.connect();
    await a.subscribe("anything");
    const closed = await nextEvent(a, "state", (s) => s.state === "closed", 10_000);
    assert.equal(closed.error?.code, "token_expired");
    assert.equal(closed.error?.closeCode, 4001);
    assert.equal(closed.error?.terminal, true);
    assert.match(closed.error?.message ?? "", /token provider/);
    assert.equal(a.lastError, closed.error);
    assert.deepEqual(errors.map((e) => e.code), ["token_expired"]);
    await assert.rejects(a.publish("anything", 1), (e: unknown) => e instanceof HeraldError && e.code === "token_expired");
    // No reconnect storm: with a 1 ms backoff any retry would have happened
    // many times within this bounded window.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(counting.attempts(), 1);
    assert.equal(a.state, "closed");
  });

  test("terminal: an expired or forged static token is refused at the upgrade (HTTP 401) after exactly one attempt", async () => {
    const gw = await gateway();
    const expired = await hsToken({ sub: "old", channels: [">"], exp: nowSeconds() - 120, iat: nowSeconds() - 240 });
    const c1 = countingWebSocket();
    const a = client(gw.wsUrl, expired, { WebSocket: c1.WS, backoff: { baseMs: 1, maxMs: 1 } });
    await assert.rejects(a.connect(), (e: unknown) => e instanceof HeraldError && e.code === "token_expired" && e.terminal && e.status === 401);
    assert.equal(a.state, "closed");
    assert.equal(c1.attempts(), 1);

    const forged = await hsToken({ sub: "mallory", channels: [">"] }, { secret: "x".repeat(48) });
    const c2 = countingWebSocket();
    const b = client(gw.wsUrl, forged, { WebSocket: c2.WS, backoff: { baseMs: 1, maxMs: 1 } });
    await assert.rejects(b.connect(), (e: unknown) => e instanceof HeraldError && e.code === "unauthorized" && e.status === 401);
    assert.equal(c2.attempts(), 1);
    assert.equal(b.lastError?.code, "unauthorized");
  });

  test("a provider whose first token is refused gets called again and connects", async () => {
    const gw = await gateway();
    let calls = 0;
    const provider = () => {
      calls++;
      return calls === 1
        ? hsToken({ sub: "p", channels: [">"] }, { secret: "y".repeat(48) })
        : hsToken({ sub: "p", channels: [">"] });
    };
    const a = client(gw.wsUrl, provider);
    await a.connect();
    assert.equal(calls, 2);
    assert.equal(a.state, "connected");
  });
});
