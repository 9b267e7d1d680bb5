/**
 * Channel names and the matching of the `channels`/`publish` claim patterns
 * (packages/core/src/channels.ts): NATS semantics, `*` one token, `>` one or
 * more trailing tokens. The pattern syntax itself is in auth-patterns.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ChannelPatterns, HeraldError, MAX_CHANNEL_BYTES, MAX_CHANNEL_TOKENS, channelProblem } from "../packages/core/src/index.js";

describe("channel names", () => {
  test("valid: tokens of A-Z a-z 0-9 _ -, up to 16 tokens and 200 bytes", () => {
    const sixteen = Array(MAX_CHANNEL_TOKENS).fill("t").join(".");
    for (const c of ["news", "news.eu", "chat.42", "A-b_C.9", sixteen, "x".repeat(MAX_CHANNEL_BYTES)]) {
      assert.equal(channelProblem(c), null, c);
    }
  });

  test("invalid, each with its reason", () => {
    const cases: Array<[unknown, RegExp]> = [
      ["", /non-empty string/],
      [undefined, /non-empty string/],
      [42, /non-empty string/],
      ["x".repeat(MAX_CHANNEL_BYTES + 1), /longer than 200 bytes/],
      [Array(MAX_CHANNEL_TOKENS + 1).fill("t").join("."), /more than 16 tokens/],
      ["a..b", /empty token/],
      [".a", /empty token/],
      ["a.", /empty token/],
      ["news.*", /wildcards are not allowed/],
      ["news.>", /wildcards are not allowed/],
      ["a*b", /wildcards are not allowed/],
      ["a b", /may only contain/],
      ["caf\u00e9", /may only contain/],
      ["a/b", /may only contain/],
    ];
    for (const [c, reason] of cases) assert.match(channelProblem(c) ?? "valid", reason, String(c).slice(0, 30));
  });
});

describe("ChannelPatterns.matches", () => {
  const matches = (patterns: string[], channel: string) => ChannelPatterns.of(patterns).matches(channel);

  test("exact patterns match only themselves", () => {
    assert.ok(matches(["news"], "news"));
    assert.ok(!matches(["news"], "news.eu"));
    assert.ok(!matches(["news"], "new"));
    assert.ok(!matches(["news.eu"], "news"));
  });

  test("* is exactly one token, anywhere", () => {
    assert.ok(matches(["news.*"], "news.eu"));
    assert.ok(!matches(["news.*"], "news"));
    assert.ok(!matches(["news.*"], "news.eu.fr"));
    assert.ok(matches(["*.eu"], "news.eu"));
    assert.ok(!matches(["*.eu"], "news.us"));
    assert.ok(matches(["*"], "anything"));
    assert.ok(!matches(["*"], "two.tokens"));
    assert.ok(matches(["a.*.c"], "a.b.c") && !matches(["a.*.c"], "a.b.d"));
  });

  test("> is one or more trailing tokens, never zero", () => {
    assert.ok(matches([">"], "a") && matches([">"], "a.b.c"));
    assert.ok(matches(["news.>"], "news.eu") && matches(["news.>"], "news.eu.fr.paris"));
    assert.ok(!matches(["news.>"], "news"));
    assert.ok(matches(["*.eu.>"], "news.eu.fr") && !matches(["*.eu.>"], "news.eu"));
  });

  test("a list matches when any pattern does; the empty list matches nothing", () => {
    const p = ChannelPatterns.of(["news", "chat.*", "sport.>"]);
    for (const c of ["news", "chat.1", "sport.a.b"]) assert.ok(p.matches(c), c);
    for (const c of ["chat", "chat.1.2", "sport", "other"]) assert.ok(!p.matches(c), c);
    assert.equal(ChannelPatterns.of([]), ChannelPatterns.NONE, "empty claims share one instance");
    assert.ok(ChannelPatterns.NONE.empty && !ChannelPatterns.NONE.matches("news"));
    assert.ok(!p.empty);
  });

  test("a wildcard character inside a channel is a literal there, so it never widens a match", () => {
    assert.ok(!matches(["news.eu"], "news.*"));
    assert.ok(matches(["news.*"], "news.*"), "a * token matches any one token, a literal '*' included; channelProblem refuses such channels first");
  });

  test("an invalid pattern is an error, not a skipped or wider grant", () => {
    assert.throws(() => ChannelPatterns.of(["news", "a.>.b"]), (err: unknown) => err instanceof HeraldError && err.code === "invalid_pattern");
  });
});
