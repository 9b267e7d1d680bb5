/**
 * The named benchmark scenarios. Each one starts every target in turn (its
 * own NATS, its own server processes), drives it with the same LoadGen
 * settings, stops it, and returns rows for the report.
 */
import { runAvalanche } from "./lib/avalanche.js";
import type { LoadGen } from "./lib/loadgen.js";
import type { Shape } from "./lib/protocol.js";
import { sampleAll } from "./lib/procstat.js";
import { n, phaseRow, quiet, saturated, settle, withTarget, type RunConfig, type TargetName, type Row, type Scenario, type ScenarioResult } from "./lib/scenario-kit.js";
import { PRESENCE_SCENARIO } from "./lib/presence-scenario.js";
import { SSE_SCENARIO } from "./lib/sse-scenario.js";
import { COMPRESSION_SCENARIO } from "./lib/compression-scenario.js";

export type { RunConfig, Row, ScenarioResult } from "./lib/scenario-kit.js";

/** The storm of connect-storm: 500 upgrades in flight per worker, all on one shared channel. */
const STORM = (count: number) => ({ count, rate: 0, inflight: 500, shape: { kind: "shared", channel: "bench" } as Shape, probeEvery: 1e9 });

function stormRow(target: string, c: Awaited<ReturnType<LoadGen["connect"]>>, extra: Record<string, unknown> = {}): Row {
  const perConnection = (seconds: number) => (c.ready ? +((seconds * 1000) / c.ready).toFixed(3) : null);
  return {
    target,
    ...extra,
    attempted: c.attempted,
    ready: c.ready,
    failed: c.failed,
    failures: c.failures,
    seconds: +c.seconds.toFixed(2),
    connectionsPerSecond: Math.round(c.perSecond),
    handshakeP50Ms: c.handshakeMs.p50,
    handshakeP99Ms: c.handshakeMs.p99,
    serverCpuMsPerConnection: perConnection(c.serverCpuSeconds),
    brokerCpuMsPerConnection: perConnection(c.brokerCpuSeconds),
    generatorCpuMsPerConnection: perConnection(c.generatorCpuSeconds),
    serverBusiestThreadMsPerConnection: perConnection(c.serverBusiestThreadCpuSeconds),
    serverBusiestThreadPercent: c.seconds > 0 ? Math.round((100 * c.serverBusiestThreadCpuSeconds) / c.seconds) : null,
    machineBusyPercent: Number.isFinite(c.machineBusyPercent) ? Math.round(c.machineBusyPercent) : null,
  };
}

function idle(base: number, defaultTargets: TargetName[], shape: Shape = { kind: "per-user" }): Scenario {
  const shared = shape.kind === "shared";
  return {
    title: `Idle connections: memory (${base / 1000}k${shared ? ", one shared channel" : ""})`,
    description: shared
      ? `${base} authenticated sockets, all subscribed to ONE shared channel, no traffic; server RSS growth per connection (one topic with ${base} subscribers instead of ${base} topics).`
      : `${base} authenticated sockets, each subscribed to its own channel, no traffic; server RSS growth per connection.`,
    defaultTargets,
    async run(cfg, name) {
      const count = n(cfg, base);
      return withTarget(cfg, name, count, async (t, lg) => {
        await settle(cfg.settleMs / 4);
        const before = sampleAll(t.spec.serverPids);
        const c = await lg.connect({ count, rate: 5000, shape, probeEvery: 1e9 });
        await settle(cfg.settleMs);
        const after = sampleAll(t.spec.serverPids);
        return [
          {
            target: t.spec.name,
            processes: t.spec.serverPids.length,
            connections: c.ready,
            failed: c.failed,
            rssBeforeMiB: +(before.rssBytes / 2 ** 20).toFixed(1),
            rssAfterMiB: +(after.rssBytes / 2 ** 20).toFixed(1),
            bytesPerConnection: c.ready > 0 ? Math.round((after.rssBytes - before.rssBytes) / c.ready) : null,
            serverCpuSeconds: +c.serverCpuSeconds.toFixed(2),
          },
        ];
      });
    },
  };
}

export const SCENARIOS: Record<string, Scenario> = {
  "idle-10k": idle(10_000, ["herald", "nats-ws", "ws-baseline"]),
  "idle-50k": idle(50_000, ["herald-multi", "ws-baseline-multi"]),
  "idle-10k-shared": idle(10_000, ["herald", "nats-ws", "ws-baseline"], { kind: "shared", channel: "bench" }),

  "conns-100k": {
    title: "100k connections on one machine",
    description:
      "100,000 authenticated sockets over as many gateway processes as the 20k open-files cap needs (6: under 17k each; generator workers hold at most 15k each), " +
      "each subscribed to a personal channel u.<i> AND one of 1,000 group channels g.<i % 1000> (two subscriptions per socket, 100 sockets per group). " +
      "Then 1 msg/s on every group channel (1,000 msg/s, 64 B, 100k deliveries/s). RSS per connection = RSS growth over the before-connect RSS / connections (all server processes). " +
      "nats-ws is not run: one nats-server process cannot hold 100k sockets under the 20,000 open-files cap.",
    defaultTargets: ["herald-multi", "ws-baseline-multi"],
    async run(cfg, name) {
      const count = n(cfg, 100_000);
      const groups = Math.min(1000, Math.max(10, Math.round(count / 100)));
      const multi = Math.max(2, Math.ceil(count / 16_700));
      return withTarget(
        cfg,
        name,
        count,
        async (t, lg) => {
          await settle(cfg.settleMs / 4);
          const before = sampleAll(t.spec.serverPids);
          const c = await lg.connect({ count, rate: 0, inflight: 300, shape: { kind: "personal+group", groups }, probeEvery: 100, timeoutMs: 240_000 });
          await settle(cfg.settleMs);
          const after = sampleAll(t.spec.serverPids);
          const quietMs = await quiet([...t.spec.serverPids, ...lg.workerPids], 30_000);
          const channels = Array.from({ length: groups }, (_, g) => `g.${g}`);
          // a long settle: on 2 shared cores 100k deliveries/s can run behind, and late is not lost
          const p = await lg.phase({ rate: groups, size: 64, seconds: cfg.phaseSeconds * 2, channels, settleMs: 20_000 });
          return [
            {
              ...phaseRow(t.spec.name, p, { processes: t.spec.serverPids.length, groups }),
              connections: c.ready,
              failed: c.failed,
              failures: c.failures,
              connectSeconds: +c.seconds.toFixed(1),
              connectionsPerSecond: Math.round(c.perSecond),
              rssBeforeMiB: +(before.rssBytes / 2 ** 20).toFixed(1),
              rssAfterMiB: +(after.rssBytes / 2 ** 20).toFixed(1),
              bytesPerConnection: c.ready > 0 ? Math.round((after.rssBytes - before.rssBytes) / c.ready) : null,
              deliveryRatio: p.expected > 0 ? +(p.received / p.expected).toFixed(5) : null,
              quietAfterConnectMs: quietMs,
            },
          ];
        },
        { multi },
      );
    },
  },

  avalanche: {
    title: "Reconnect avalanche (recovery mode)",
    description:
      "40,000 clients over 4 Herald gateways in recovery mode (JetStream history), spread evenly, each subscribed to one of 1,000 group channels g.<i % 1000>; " +
      "a publisher sends 200 msg/s (64 B) round-robin over the groups through NATS during the whole test. Every client tracks, per channel, the last position (seq) and the publisher's own consecutive sequence (data.seq). " +
      "Event 1: gateway #0 is SIGKILLed. Event 2 (once event 1 is over; gateway #0 restarted empty first): gateway #1 gets SIGTERM and drains (1001 closes spread over DRAIN_SECONDS=10). " +
      "A displaced client reconnects to another gateway (round-robin over the others by client index, skipping ones that refused within 3 s; with the SDK's reconnect delays (after a lost connection full-jitter backoff, 0-500 ms, then 0-1 s, 0-2 s...; after a 1001 a uniform 0-5 s); at most 30 attempts, 10 s per attempt, 90 s in all) and resubscribes with since = its last position. " +
      "**Recovered** = a new connection is open, its subscribed reply said recovered:true, and the client holds every message published on its channel before the event (the publisher's count at the event; catch-up delivered). " +
      "Times are from the signal (recover p50/p99/max) and from the client's own drop. Peak reconnects/s = most successful resubscribes in one 1 s bucket. Survivor CPU = the other gateways' CPU over the recovery window (sum of processes, 200% = both cores). " +
      "Lost = publisher seqs never received by a client (gaps after recovery plus what subscribed clients still lack at the end), over ALL clients; duplicates = publisher seqs received twice; prev mismatches = frames whose prev was not the client's last position. " +
      "Herald only: nats-ws and the ws baseline have no positions or resume, so a reconnect there loses what was published meanwhile by design.",
    defaultTargets: ["herald-history-multi"],
    async run(cfg, name, notes) {
      const count = n(cfg, 40_000);
      const groups = Math.min(1000, Math.max(10, Math.round(1000 * cfg.scale)));
      const drainSeconds = cfg.scale >= 0.5 ? 10 : 2;
      return withTarget(
        cfg,
        name,
        count,
        (t, lg) => runAvalanche(t, lg, { count, groups, rate: 200, size: 64, drainSeconds, eventTimeoutMs: 90_000, log: cfg.log }, notes) as Promise<Row[]>,
        { multi: Math.max(2, cfg.multi), env: { DRAIN_SECONDS: String(drainSeconds) } },
      );
    },
  },

  "connect-storm": {
    title: "Connect storm",
    description: "10k authenticated upgrades as fast as the generator can issue them (500 in flight per worker), one JWT per user; a connection counts once subscribed.",
    defaultTargets: ["herald", "herald-multi", "nats-ws", "ws-baseline"],
    async run(cfg, name) {
      const count = n(cfg, 10_000);
      return withTarget(cfg, name, count, async (t, lg) => [stormRow(t.spec.name, await lg.connect(STORM(count)))]);
    },
  },

  "connect-storm-warm": {
    title: "Connect storm, three in a row on one server process",
    description:
      "The connect storm three times against the same server process, each after the previous storm's connections were closed and the server went quiet: storm 1 meets a freshly started process (as `connect-storm` does), storms 2 and 3 one that has served the same work before, as the surviving pods of an avalanche have.",
    defaultTargets: ["herald", "nats-ws"],
    async run(cfg, name) {
      const count = n(cfg, 10_000);
      return withTarget(cfg, name, count, async (t, lg) => {
        const rows: Row[] = [];
        for (let storm = 1; storm <= 3; storm++) {
          rows.push(stormRow(t.spec.name, await lg.connect({ ...STORM(count), offset: (storm - 1) * count }), { storm }));
          await lg.closeAll();
          await quiet(t.spec.serverPids, 10_000);
        }
        return rows;
      });
    },
  },

  broadcast: {
    title: "Broadcast fan-out",
    description: "10k sockets on one channel; publish through NATS at 10, 100, 1000 msg/s with 64 B and 1 KB payloads. A load step stops the ladder once it saturates (loss > 1%, p99 > 2 s or slow-consumer closes). herald-history is Herald in recovery mode (JetStream stores and republishes every message); herald-batched is Herald with WRITE_DELAY_MS=10 (frames held up to 10 ms and written together).",
    defaultTargets: ["herald", "herald-history", "herald-batched", "herald-multi", "nats-ws", "ws-baseline"],
    async run(cfg, name, notes) {
      const count = n(cfg, 10_000);
      const rows: Row[] = [];
      for (const size of [64, 1024]) {
        await withTarget(cfg, name, count, async (t, lg) => {
          await lg.connect({ count, rate: 0, shape: { kind: "shared", channel: "bench" }, probeEvery: 100 });
          for (const rate of [10, 100, 1000].map((r) => Math.max(5, Math.round(r * Math.min(1, cfg.scale * 10))))) {
            const p = await lg.phase({ rate, size, seconds: cfg.phaseSeconds, settleMs: 4000 });
            rows.push(phaseRow(t.spec.name, p, { subscribers: count }));
            if (saturated(p)) {
              notes.push(`${t.spec.name} ${size} B: saturated at ${rate} msg/s (${p.deliveriesPerSecond} deliveries/s); higher rates skipped.`);
              break;
            }
          }
        });
      }
      return rows;
    },
  },

  channels: {
    title: "Many channels",
    description: "10k sockets in groups of 10 (1000 channels); messages spread round-robin over the channels at 1000 and 10000 msg/s, 64 B.",
    defaultTargets: ["herald", "nats-ws", "ws-baseline"],
    async run(cfg, name) {
      const count = n(cfg, 10_000);
      return withTarget(cfg, name, count, async (t, lg) => {
        await lg.connect({ count, rate: 0, shape: { kind: "groups", k: 10 }, probeEvery: 50 });
        const rows: Row[] = [];
        for (const rate of [1000, 10_000]) {
          const p = await lg.phase({ rate: Math.max(10, Math.round(rate * Math.min(1, cfg.scale * 5))), size: 64, seconds: cfg.phaseSeconds });
          rows.push(phaseRow(t.spec.name, p, { channels: lg.channels().length }));
        }
        return rows;
      });
    },
  },

  "slow-consumer": {
    title: "Slow-consumer mix",
    description: "2k sockets on one channel, 4 KB at 50 msg/s. Phase 1 all read; phase 2 after 5% of the sockets stop reading. Latency and loss are for the sockets that keep reading; a server should shed the stalled ones (Herald: close 4009 past 1 MiB buffered).",
    defaultTargets: ["herald", "nats-ws", "ws-baseline"],
    async run(cfg, name) {
      const count = n(cfg, 2000);
      return withTarget(cfg, name, count, async (t, lg) => {
        await lg.connect({ count, rate: 0, shape: { kind: "shared", channel: "bench" }, probeEvery: 20 });
        const rows: Row[] = [];
        const a = await lg.phase({ rate: 50, size: 4096, seconds: cfg.phaseSeconds });
        rows.push(phaseRow(t.spec.name, a, { phase: "all reading", stalled: 0 }));
        const stalled = await lg.pauseReaders(20);
        const b = await lg.phase({ rate: 50, size: 4096, seconds: cfg.phaseSeconds * 2 });
        rows.push(phaseRow(t.spec.name, b, { phase: "5% stopped reading", stalled, stalledReceived: b.pausedReceived }));
        return rows;
      });
    },
  },

  ceiling: {
    title: "Generator ceiling",
    description: "1000 sockets, 64 B at 1000-3000 msg/s against a trivial uWS broadcaster (no auth, no limits) and against Herald: the most frames per second the load generator can count here.",
    defaultTargets: ["uws-ceiling", "herald"],
    async run(cfg, name) {
      const count = n(cfg, 1000);
      return withTarget(cfg, name, count, async (t, lg) => {
        await lg.connect({ count, rate: 0, shape: { kind: "shared", channel: "bench" }, probeEvery: 100 });
        const rows: Row[] = [];
        for (const rate of [1000, 2000, 3000]) {
          const p = await lg.phase({ rate: Math.round(rate * Math.min(1, cfg.scale * 10)), size: 64, seconds: cfg.phaseSeconds });
          rows.push(phaseRow(t.spec.name, p, { subscribers: count }));
        }
        return rows;
      });
    },
  },
  presence: PRESENCE_SCENARIO,
  sse: SSE_SCENARIO,
  compression: COMPRESSION_SCENARIO,
};

export const FULL = ["ceiling", "idle-10k", "idle-10k-shared", "idle-50k", "connect-storm", "broadcast", "channels", "slow-consumer"];
/** Named scenarios not in FULL (each takes minutes on this machine): run them by name. */
export const EXTRA = ["avalanche", "conns-100k", "connect-storm-warm", "presence", "sse", "compression"];

export async function runScenario(name: string, cfg: RunConfig): Promise<ScenarioResult> {
  const sc = SCENARIOS[name];
  if (!sc) throw new Error(`unknown scenario ${name} (known: ${Object.keys(SCENARIOS).join(", ")})`);
  // --targets narrows each scenario to the listed targets it normally runs (or runs them as given when none match)
  const both = cfg.targets.filter((t) => sc.defaultTargets.includes(t));
  const targets = cfg.targets.length === 0 ? sc.defaultTargets : both.length ? both : cfg.targets;
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const target of targets) {
    cfg.log(`== ${name} :: ${target}`);
    const t0 = Date.now();
    try {
      rows.push(...(await sc.run(cfg, target, notes)));
    } catch (err) {
      notes.push(`${target}: failed: ${(err as Error).message.split("\n")[0]}`);
      cfg.log(`   ${target} failed: ${(err as Error).stack}`);
    }
    cfg.log(`   (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  return { name, title: sc.title, description: sc.description, rows, notes };
}
