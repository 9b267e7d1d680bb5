/**
 * The token's `subs` (issue 11): channels the gateway subscribes a
 * connection to before its welcome. The claim itself is read with the other
 * claims (packages/core claims.ts); what this gateway's configuration adds
 * is checked at the upgrade (subsRefusal). At open each one goes through the
 * same join as a client `subscribe` (ProtocolHandler.join), so it counts
 * towards MAX_CHANNELS_PER_CONNECTION and the metrics like any other
 * subscription, and the welcome lists each with the position that join
 * reported. Until the welcome, what reaches the connection is held
 * (pre-welcome.ts) and follows it in order: nothing after a listed
 * position is lost or sent twice.
 *
 * When a join is refused (no broker connection, the history cannot be read)
 * the connection is closed with 1011 before any welcome: a subscription
 * without its position on a channel that has positions could be neither
 * resumed nor checked for gaps, while a reconnect (with backoff) retries the
 * whole set.
 */
import { AuthError, CloseCode, welcomeFrame, type GatewayMetrics, type Identity, type Logger, type Namespaces, type WelcomeSub } from "@herald/core";
import type { HeldTopics } from "./pre-welcome.js";
import type { ProtocolHandler } from "./protocol-handler.js";
import type { Connection } from "./connection.js";

/** Why this gateway refuses a token's subs (401, `invalid_claim`): more channels than a connection may hold, or one in no namespace. */
export function subsRefusal(identity: Identity, config: { maxChannelsPerConnection: number; namespaces: Namespaces }): AuthError | undefined {
  const { subs } = identity;
  if (subs.length === 0) return undefined;
  const max = config.maxChannelsPerConnection;
  if (subs.length > max) {
    return new AuthError("invalid_claim", `token claim 'subs' lists ${subs.length} channels; a connection holds at most ${max} (MAX_CHANNELS_PER_CONNECTION)`);
  }
  for (const channel of subs) {
    const problem = config.namespaces.problem(channel);
    if (problem !== null) return new AuthError("invalid_claim", `token claim 'subs': ${problem}`);
  }
  return undefined;
}

/** A connection that can keep what it is sent until its welcome (WsConnection, SseConnection). */
export interface HoldingConnection extends Connection {
  hold(topics: HeldTopics): void;
  welcome(frame: string): void;
}

export interface ServerSubsDeps {
  protocol: ProtocolHandler;
  held: HeldTopics;
  metrics: GatewayMetrics;
  logger: Logger;
}

/** Subscribes a just-opened connection to its token's subs, then sends the welcome listing them (or closes it with 1011). */
export function openWithSubs(conn: HoldingConnection, deps: ServerSubsDeps): void {
  const { subs, sub } = conn.identity;
  conn.hold(deps.held);
  const listed: Array<WelcomeSub | undefined> = [];
  let waiting = subs.length;
  let failed = false;
  const settled = () => {
    if (--waiting > 0 || failed || conn.closed) return;
    conn.welcome(welcomeFrame(sub, conn.id, listed.filter((s): s is WelcomeSub => s !== undefined)));
  };
  subs.forEach((channel, i) => {
    let answered = false;
    void deps.protocol
      .join(conn, channel, undefined, undefined, {
        joined: (at) => {
          if (answered) return;
          answered = true;
          listed[i] = at ? { channel, seq: at.seq, epoch: at.epoch } : { channel };
          settled();
        },
        refused: (code, message) => {
          if (answered) return;
          answered = true;
          if (failed) return;
          failed = true;
          deps.metrics.errors.inc({ code });
          deps.logger.warn({ connection: conn.id, channel, code, detail: message }, "a token sub could not be subscribed: connection closed with 1011");
          conn.close(CloseCode.InternalError, code === "unavailable" ? "subs unavailable, reconnect" : "subs refused");
        },
      })
      // Neither answer: the client left the channel (or resubscribed it with `since`) before the welcome; its own reply follows the welcome.
      .then(() => {
        if (answered) return;
        answered = true;
        settled();
      });
  });
}
