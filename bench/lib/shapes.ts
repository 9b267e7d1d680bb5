/**
 * Which channels connection i subscribes to, for every Shape. One function
 * used by the workers (what to subscribe) and the coordinator (how many
 * subscribers each channel has, for expected deliveries), so they agree.
 */
import type { Shape } from "./protocol.js";

export function channelsOf(shape: Shape, i: number): string[] {
  switch (shape.kind) {
    case "shared":
      return [shape.channel];
    case "per-user":
      return [`u.${i}`];
    case "groups":
      return [`g.${Math.floor(i / shape.k)}`];
    case "group-of":
      return [`g.${i % shape.groups}`];
    case "personal+group":
      return [`u.${i}`, `g.${i % shape.groups}`];
    case "presence":
      return [shape.channel, `${shape.prefix}.${i % shape.rooms}`];
  }
}
