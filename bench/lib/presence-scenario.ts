/**
 * The `presence` scenario (by name only): Herald without presence, then with
 * it, on the same sockets and channels, so the report shows what presence
 * adds side by side. See presence-bench.ts for what is measured.
 */
import { BIG_CHANNEL, ROOM_PREFIX, presenceNamespaces, runPresenceBench } from "./presence-bench.js";
import { n, withTarget, type Row, type Scenario } from "./scenario-kit.js";

export const PRESENCE_SCENARIO: Scenario = {
  title: "Presence at scale: one channel of 100,000 members and 1,000 of 100",
  description:
    `100,000 authenticated sockets over 6 Herald gateway processes (under the 20k open-files cap each), every one a member of ${BIG_CHANNEL} ` +
    `(100,000 members) and of one of 1,000 rooms ${ROOM_PREFIX}.<i % 1000> (100 members each; in the third run join_leave is on there: every join and leave is framed to the room's other members, 1,000 members and more get none). ` +
    "Run three times on fresh processes: without presence (the same NAMESPACES with presence off), with presence but no join/leave frames, and with join/leave frames in the rooms. " +
    "Extra memory per member = the RSS growth per gateway with presence minus without, over the members each gateway holds (every gateway holds every member of both channels: 200,000). " +
    "NATS traffic = messages the gateways publish on herald.pres.> (batched changes, heartbeats, snapshot requests) while connecting and over an idle window. " +
    `presence_stats (1,000 requests) and presence pages (3 walks over all ${BIG_CHANNEL} members, 1,000 per page) are client frames on one connection per gateway, each gateway in turn, timed in the coordinator; ` +
    "every walk is checked to cover every member exactly once (the probes' frame rate limit is raised for this: they send back to back). Join-to-event (200 samples): a watcher on gateway 0 in 90 rooms, joiners on the other gateways subscribe to them and unsubscribe in turn; " +
    "time from the joiner's frame sent to the watcher's join (leave) frame received. A gateway sends its changes at most every 50 ms: a change within 50 ms of its previous batch waits for the next one (a leave right after a join does).",
  defaultTargets: ["herald-multi"],
  async run(cfg, name, notes) {
    const count = n(cfg, 100_000);
    const rooms = Math.min(1000, Math.max(2, Math.round(count / 100)));
    const multi = Math.max(2, Math.ceil(count / 16_700));
    const rows: Row[] = [];
    const variants = [
      { label: "no presence", presence: false, joinLeave: false },
      { label: "presence, counts and lists", presence: true, joinLeave: false },
      { label: "presence + join/leave in rooms", presence: true, joinLeave: true },
    ];
    for (const { label, presence, joinLeave } of variants) {
      // The probes send their requests back to back on one connection each: above the default 50 frames/s per connection.
      const env = { NAMESPACES: presenceNamespaces(presence, joinLeave), HISTORY: "false", RATE_LIMIT_PER_SECOND: "100000", RATE_LIMIT_BURST: "100000" };
      const got = await withTarget(
        cfg,
        name,
        count,
        (t, lg) =>
          runPresenceBench(
            t,
            lg,
            {
              count,
              rooms,
              presence,
              joinLeave,
              statsSamples: Math.max(50, Math.round(1000 * Math.min(1, cfg.scale))),
              pageWalks: 3,
              joinSamples: Math.max(10, Math.min(200, rooms)),
              idleSeconds: Math.max(3, Math.round(30 * Math.min(1, cfg.scale))),
              settleMs: cfg.settleMs,
              log: cfg.log,
            },
            notes,
          ),
        { multi, env },
      );
      rows.push(...got.map((r) => ({ ...r, target: `${r["target"]} (${label})` }) as Row));
    }
    const [off, ...on] = rows;
    for (const row of off ? on : []) {
      const members = row["membersPerGateway"] as number;
      const extra = ((row["rssGrowthMiBPerGateway"] as number) - (off!["rssGrowthMiBPerGateway"] as number)) * 2 ** 20;
      row["extraRssBytesPerMember"] = members ? Math.round(extra / members) : null;
    }
    return rows;
  },
};
