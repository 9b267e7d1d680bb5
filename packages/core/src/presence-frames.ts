/**
 * Server frames of presence (docs/protocol.md "Presence"): pages of members,
 * counts, and join/leave events. `info` is the token's claim, already
 * compact JSON, spliced in as it is.
 */
import type { RequestId } from "./protocol.js";

export interface PresenceMember {
  sub: string;
  connection: string;
  /** Compact JSON of the `info` claim, or undefined. */
  info: string | undefined;
}

const idPart = (id: RequestId | undefined) => (id === undefined ? "" : `"id":${JSON.stringify(id)},`);
const member = (m: PresenceMember) => `{"sub":${JSON.stringify(m.sub)},"connection":${JSON.stringify(m.connection)},"info":${m.info ?? "{}"}}`;

export function presenceFrame(channel: string, id: RequestId | undefined, clients: number, users: number, members: readonly PresenceMember[], cursor: string | null): string {
  return `{"type":"presence","channel":${JSON.stringify(channel)},${idPart(id)}"clients":${clients},"users":${users},"members":[${members.map(member).join(",")}],"cursor":${cursor === null ? "null" : JSON.stringify(cursor)}}`;
}

export function presenceStatsFrame(channel: string, id: RequestId | undefined, clients: number, users: number): string {
  return `{"type":"presence_stats","channel":${JSON.stringify(channel)},${idPart(id)}"clients":${clients},"users":${users}}`;
}

export function joinFrame(channel: string, m: PresenceMember): string {
  return `{"type":"join","channel":${JSON.stringify(channel)},"sub":${JSON.stringify(m.sub)},"connection":${JSON.stringify(m.connection)},"info":${m.info ?? "{}"}}`;
}

export function leaveFrame(channel: string, m: PresenceMember): string {
  return `{"type":"leave","channel":${JSON.stringify(channel)},"sub":${JSON.stringify(m.sub)},"connection":${JSON.stringify(m.connection)}}`;
}
