/**
 * The open connections of each user (`sub`), so the server API reaches all
 * of a user's connections without scanning every socket. Kept by the app's
 * open and close handlers.
 */
import type { Connection } from "./connection.js";

const NONE: ReadonlySet<Connection> = new Set();

export class ConnectionsByUser {
  private readonly bySub = new Map<string, Set<Connection>>();

  add(conn: Connection): void {
    const sub = conn.identity.sub;
    let set = this.bySub.get(sub);
    if (!set) this.bySub.set(sub, (set = new Set()));
    set.add(conn);
  }

  delete(conn: Connection): void {
    const sub = conn.identity.sub;
    const set = this.bySub.get(sub);
    if (!set) return;
    set.delete(conn);
    if (set.size === 0) this.bySub.delete(sub);
  }

  /** The user's open connections (a live view: copy it before closing them). */
  of(sub: string): ReadonlySet<Connection> {
    return this.bySub.get(sub) ?? NONE;
  }
}
