/**
 * The welcome's `subs`: channels the server subscribed a connection to from
 * its token's `subs` claim, each with the position it starts from (on a
 * channel with history). They are the client's subscriptions like any
 * other: the same handle, events and positions, and after a reconnect the
 * same resume with `since`/`epoch` (Subscriptions.resubscribeAll), which
 * the server answers although it already holds the channel again.
 */
import type { Conn, Emit } from "./connection.js";
import { SubState, type SubscriptionOwner } from "./subscription.js";
import type { WelcomeSub } from "./types.js";

export interface WelcomeSubsHost {
  readonly subs: Map<string, SubState>;
  readonly owner: SubscriptionOwner;
  emit: Emit;
}

/**
 * Takes one server-side subscription of `conn`'s welcome; `current`: `conn`
 * is the client's connection (false: the second connection of a token
 * refresh, where the current one keeps delivering). A channel it marks
 * confirmed on `conn` needs no subscribe there; one it marks resuming is
 * re-subscribed with the client's own position, and what `conn` sends of
 * it before that answer is left to the answer's replay.
 */
export function takeWelcomeSub(host: WelcomeSubsHost, conn: Conn, entry: WelcomeSub, current: boolean): void {
  const { channel, seq, epoch } = entry;
  const sub = host.subs.get(channel);
  if (!sub) {
    // Not asked for by the application: a subscription of the client from here on, positioned at the welcome.
    const made = new SubState(channel, host.owner, seq, epoch);
    host.subs.set(channel, made);
    return confirm(host, conn, made, seq);
  }
  if (!current) {
    // The refresh connection takes over once its re-subscribe is answered, from the client's own position.
    if (seq !== undefined && sub.lastSeq !== undefined) conn.resuming.add(channel);
    return;
  }
  const last = sub.lastSeq;
  if (seq === undefined || last === undefined) {
    // No positions on the channel, or none yet for the client: it starts here.
    if (seq !== undefined) {
      sub.lastSeq = seq;
      sub.epoch = epoch;
    }
    return confirm(host, conn, sub, seq);
  }
  if (sub.epoch !== undefined && sub.epoch !== epoch) {
    // The client's position names another life of the history: lost, as a resume would be answered; go on from the welcome's position.
    sub.lastSeq = seq;
    sub.epoch = epoch;
    host.emit("recovered", { channel, since: last, seq, epoch: epoch as string, recovered: false });
    return confirm(host, conn, sub, seq);
  }
  if (seq === last) {
    // Nothing missed: the stream goes on from where the client is.
    sub.epoch = epoch;
    host.emit("recovered", { channel, since: last, seq, epoch: epoch as string, recovered: true });
    return confirm(host, conn, sub, seq);
  }
  // Messages between the two positions (or a welcome behind the client: messages still on their way to this gateway): the resume answers for them.
  conn.resuming.add(channel);
}

function confirm(host: WelcomeSubsHost, conn: Conn, sub: SubState, seq: number | undefined): void {
  const channel = sub.channel;
  conn.confirmed.add(channel);
  sub.recovering = false;
  const resubscribed = sub.everConfirmed;
  sub.everConfirmed = true;
  sub.resolveWaiters();
  host.emit("subscribed", seq === undefined ? { channel, resubscribed } : { channel, seq, resubscribed });
}
