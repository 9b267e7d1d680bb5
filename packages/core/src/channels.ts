/**
 * Channel names and channel patterns (DESIGN.md "Channels").
 *
 * A channel is dot-separated tokens of [A-Za-z0-9_-], at most 16 tokens and
 * 200 bytes. Because every byte is from that set, a valid channel can never
 * carry a NATS wildcard, whitespace or an empty token into a subject.
 */

import { HeraldError } from "./errors.js";

export const MAX_CHANNEL_TOKENS = 16;
export const MAX_CHANNEL_BYTES = 200;

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Returns null when `channel` is a valid concrete channel, otherwise the reason. */
export function channelProblem(channel: unknown): string | null {
  if (typeof channel !== "string" || channel.length === 0) return "channel must be a non-empty string";
  // Only ASCII is allowed, so string length equals byte length.
  if (channel.length > MAX_CHANNEL_BYTES) return `channel is longer than ${MAX_CHANNEL_BYTES} bytes`;
  const tokens = channel.split(".");
  if (tokens.length > MAX_CHANNEL_TOKENS) return `channel has more than ${MAX_CHANNEL_TOKENS} tokens`;
  for (const token of tokens) {
    if (token.length === 0) return "channel has an empty token";
    if (!TOKEN.test(token)) {
      return token.includes("*") || token.includes(">")
        ? "wildcards are not allowed in channel names"
        : "channel tokens may only contain A-Z a-z 0-9 _ -";
    }
  }
  return null;
}

/**
 * Returns null when `pattern` is a valid NATS-style channel pattern, otherwise
 * the reason. The rules are NATS subject-pattern rules on top of the channel
 * rules: every token non-empty; `*` (one token) and `>` (one or more trailing
 * tokens) stand alone in their token, and `>` only as the last token; every
 * other token is a literal of [A-Za-z0-9_-]; at most 16 tokens and 200 bytes.
 * A pattern NATS would refuse (`a.>.b`, `a*`) is never read as some other,
 * wider one.
 */
export function patternProblem(pattern: unknown): string | null {
  if (typeof pattern !== "string") return "must be a string";
  if (pattern.length === 0) return "must not be empty";
  if (pattern.length > MAX_CHANNEL_BYTES) return `is longer than ${MAX_CHANNEL_BYTES} bytes`;
  const tokens = pattern.split(".");
  if (tokens.length > MAX_CHANNEL_TOKENS) return `has more than ${MAX_CHANNEL_TOKENS} tokens`;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.length === 0) return "has an empty token";
    if (token === "*") continue;
    if (token === ">") {
      if (i !== tokens.length - 1) return "'>' must be the last token";
      continue;
    }
    if (TOKEN.test(token)) continue;
    return token.includes("*") || token.includes(">")
      ? "'*' and '>' must stand alone in their token"
      : "tokens may only contain A-Z a-z 0-9 _ - (or be * or >)";
  }
  return null;
}

/**
 * A compiled list of NATS-style patterns (`*` one token, `>` one or more
 * trailing tokens) as found in the `channels` and `publish` token claims.
 * Every pattern must be valid (patternProblem): an invalid one is an error,
 * never skipped and never read as a wider grant.
 */
const EXACT_ARRAY_MAX = 8;
/** Pattern lists remembered for sharing (ChannelPatterns.of). */
const SHARED_MAX = 1024;
const SHARED = new Map<string, ChannelPatterns>();

export class ChannelPatterns {
  /** Shared by every token without such a claim (one per connection adds up). */
  static readonly NONE = new ChannelPatterns([]);

  /** Exact channels: a short array (most tokens list a few; a Set's table costs ~170 bytes per token), a Set past EXACT_ARRAY_MAX. */
  private readonly exact: readonly string[] | Set<string> | undefined;
  private readonly wild: string[][] | undefined;

  /** Use ChannelPatterns.of() so empty claims share NONE. */
  private constructor(patterns: readonly string[]) {
    let exact: string[] | undefined;
    let wild: string[][] | undefined;
    for (const p of patterns) {
      const problem = patternProblem(p);
      if (problem !== null) throw new HeraldError("invalid_pattern", `channel pattern ${problem}`);
      if (p.includes("*") || p.includes(">")) (wild ??= []).push(p.split("."));
      else (exact ??= []).push(p);
    }
    // slice(): an array of the exact length (push() leaves room for 17).
    this.exact = exact && exact.length > EXACT_ARRAY_MAX ? new Set(exact) : exact?.slice();
    this.wild = wild;
  }

  /**
   * Throws a HeraldError (`invalid_pattern`) when a pattern is invalid; check
   * with patternProblem() first. Tokens with the same list (a role's grants,
   * every client of one app) share one object.
   */
  static of(patterns: readonly string[]): ChannelPatterns {
    if (patterns.length === 0) return ChannelPatterns.NONE;
    // No pattern contains a space (patternProblem), so the key is unambiguous.
    const key = patterns.join(" ");
    const known = SHARED.get(key);
    if (known) return known;
    const made = new ChannelPatterns(patterns);
    if (SHARED.size >= SHARED_MAX) SHARED.clear(); // per-user lists never repeat: start over rather than grow
    SHARED.set(key, made);
    return made;
  }

  get empty(): boolean {
    return this.exact === undefined && this.wild === undefined;
  }

  matches(channel: string): boolean {
    const exact = this.exact;
    if (exact !== undefined && (Array.isArray(exact) ? exact.includes(channel) : (exact as Set<string>).has(channel))) return true;
    if (this.wild === undefined) return false;
    const tokens = channel.split(".");
    return this.wild.some((pattern) => matchTokens(pattern, tokens));
  }
}

function matchTokens(pattern: readonly string[], tokens: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === ">") return tokens.length > i; // '>' needs at least one more token
    if (i >= tokens.length) return false;
    if (p !== "*" && p !== tokens[i]) return false;
  }
  return pattern.length === tokens.length;
}
