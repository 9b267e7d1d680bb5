/**
 * Stalled readers cost about their bound (issue 8): with SLOW_CONSUMER_BYTES
 * at 1 MiB, sockets that stop reading on a fast channel are shed with 4009
 * before each holds much more than that, measured as the gateway's RSS while
 * they are stalled, and the memory is returned once they are gone. Every
 * shed socket is counted in herald_message_drops_total{reason}.
 *
 * HERALD_STALLED_READERS (default 50) sets how many readers stall; the
 * issue's figure was taken with 200.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect as natsConnect, type NatsConnection } from "nats";
import { scrape } from "./helpers/metrics.js";
import { rssBytes } from "./helpers/rss.js";
import { subscriptionCount, type NatsServer } from "./helpers/nats.js";
import { GATEWAY_MAIN, missingBuild, uniqueName, waitFor, type ServiceProcess } from "./helpers/procs.js";
import { clientFrame, rawUpgrade, type RawSocket } from "./helpers/raw-ws.js";
import { hsToken } from "./helpers/tokens.js";
import { connect } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

const READERS = Number(process.env["HERALD_STALLED_READERS"] ?? 50);
const MiB = 1024 * 1024;
const BOUND = MiB;
/** Bytes per batch: a fast channel fills a stalled buffer between two sweeps. */
const BATCH_BYTES = 2 * MiB;
/** At most 200 MiB in total; the kernel buffers a few MiB per socket. */
const MAX_BATCHES = 100;


describe("stalled readers are shed near SLOW_CONSUMER_BYTES", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  const { clients } = stack;
  let nats: NatsServer;
  let gw: ServiceProcess;
  let nc: NatsConnection;
  const name = uniqueName("herald-gw-stalled");
  const raws: RawSocket[] = [];

  before(async () => {
    nats = await stack.nats();
    gw = await stack.gateway(nats, { NATS_NAME: name, SLOW_CONSUMER_BYTES: String(BOUND), MAX_CONNECTIONS_PER_IP: "0", LOG_LEVEL: "debug" });
    nc = await natsConnect({ servers: nats.url });
    stack.defer(() => nc.close());
    stack.defer(() => raws.forEach((r) => r.destroy()));
  });
  after(() => stack.close());

  // uWS writes frames of 16 KiB and more to the sockets at once, and queues
  // smaller ones until the loop iteration ends: both paths are checked.
  for (const MESSAGE_BYTES of [16 * 1024, 1024]) {
    test(`${MESSAGE_BYTES / 1024} KiB messages: RSS per stalled reader stays near the bound; all are shed and counted`, async (t) => {
      const channel = `firehose${MESSAGE_BYTES}`;
      const subject = `herald.ch.${channel}`;
      const BATCH = BATCH_BYTES / MESSAGE_BYTES;
      const shedBefore = (await scrape(gw.url)).get("herald_slow_consumer_closes_total") ?? 0;
      const logsBefore = gw.logs.length;
      const normal = await connect(gw.wsUrl, { token: await hsToken({ sub: "reader", channels: [channel] }) });
      clients.push(normal);
      assert.equal((await normal.request({ type: "subscribe", channel, id: 1 })).type, "subscribed");
      let received = 0;
      normal.ws.on("message", (data) => {
        if (data.toString().startsWith('{"type":"message"')) received++;
      });

      const stalled = await Promise.all(
        Array.from({ length: READERS }, async (_, i) => {
          const token = await hsToken({ sub: `stalled-${i}`, channels: [channel] });
          const r = await rawUpgrade(gw.port, { token, localAddress: `127.0.0.${2 + (i % 200)}` });
          raws.push(r);
          r.write(clientFrame(Buffer.from(JSON.stringify({ type: "subscribe", channel, id: 1 }))));
          await waitFor(() => r.texts.some((x) => x.includes('"subscribed"')), { message: `stalled reader ${i} subscribed` });
          // Stop reading: the kernel's buffers fill, then the gateway's.
          r.socket.pause();
          return r;
        }),
      );
      await waitFor(async () => ((await subscriptionCount(nats.monitorUrl, name, subject)) ?? 0) >= 1, {
        message: `gateway subscribed to ${subject}`,
      });

      const base = rssBytes(gw.pid);
      let peak = base;
      const pad = "x".repeat(MESSAGE_BYTES - 40);
      const enc = new TextEncoder();
      let sent = 0;
      let shed = 0;
      for (let batch = 0; batch < MAX_BATCHES && shed < READERS; batch++) {
        for (let i = 0; i < BATCH; i++) nc.publish(subject, enc.encode(JSON.stringify({ seq: sent++, pad })));
        await nc.flush();
        const target = sent;
        await waitFor(() => received >= target, { timeoutMs: 20_000, intervalMs: 5, message: `normal reader caught up to ${target}` });
        peak = Math.max(peak, rssBytes(gw.pid));
        shed = ((await scrape(gw.url)).get("herald_slow_consumer_closes_total") ?? 0) - shedBefore;
      }
      const perReader = (peak - base) / READERS;
      t.diagnostic(
        `${READERS} stalled readers, bound ${BOUND / MiB} MiB: peak RSS +${((peak - base) / MiB).toFixed(1)} MiB, ` +
          `${(perReader / MiB).toFixed(2)} MiB per reader (${(perReader / BOUND).toFixed(2)}x the bound); ${sent} messages of ${MESSAGE_BYTES / 1024} KiB`,
      );
      assert.equal(shed, READERS, `${shed} of ${READERS} stalled readers were shed`);
      // What each socket held when it was shed, as the gateway logs it.
      const shedLines = () => gw.logs.slice(logsBefore).filter((l) => l.includes('"slow consumer closed"'));
      // The log lines come through a pipe: they may trail the metric.
      await waitFor(() => shedLines().length >= READERS, { message: "every shed is logged with the bytes the socket held" });
      const buffered = shedLines().map((l) => (JSON.parse(l) as { buffered: number }).buffered);
      const worst = Math.max(...buffered);
      t.diagnostic(`send buffer at shed: at most ${(worst / MiB).toFixed(2)} MiB (${(worst / BOUND).toFixed(2)}x the bound)`);
      assert.ok(worst <= 1.5 * BOUND, `a stalled reader held ${(worst / MiB).toFixed(2)} MiB when shed`);
      assert.ok(perReader < 2 * BOUND, `each stalled reader cost ${(perReader / MiB).toFixed(2)} MiB of RSS`);

      const m = await scrape(gw.url);
      const drops = (m.get("herald_message_drops_total", { reason: "slow_consumer" }) ?? 0) + (m.get("herald_message_drops_total", { reason: "backpressure" }) ?? 0);
      assert.equal(drops, shedBefore + READERS, "every shed reader is counted as a drop");
      assert.ok(normal.isOpen, "the normal reader is still connected");

      // Gone from the client side too: the memory they held is returned.
      for (const r of stalled) r.destroy();
      const settled = await waitFor(
        () => {
          const now = rssBytes(gw.pid);
          return now - base < Math.max(0.25 * (peak - base), 16 * MiB) ? now : 0;
        },
        { timeoutMs: 20_000, intervalMs: 200, message: "gateway RSS back near where it was before the stall" },
      );
      t.diagnostic(`after the stalled readers left: RSS +${((settled - base) / MiB).toFixed(1)} MiB`);
      normal.ws.removeAllListeners("message");
    });
  }
});
