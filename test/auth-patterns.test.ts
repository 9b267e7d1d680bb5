/**
 * Token claim patterns follow NATS subject-pattern rules, and an invalid one
 * is an error (never skipped, never read as a wider pattern); the Bearer
 * challenge is a valid, ASCII-only header value. Pure functions and the real
 * TokenVerifier (jose) in-process.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AuthError, ChannelPatterns, HeraldError, TokenVerifier, bearerChallenge, patternProblem, quoteClaimValue } from "@herald/core";
import { SignJWT, exportSPKI, generateKeyPair } from "jose";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";

describe("channel patterns (NATS rules)", () => {
  test("valid patterns", () => {
    for (const p of ["news", "news.eu", "*", ">", "news.*", "news.>", "*.eu.>", "a-b_c.D9", Array(16).fill("a").join("."), "x".repeat(200)]) {
      assert.equal(patternProblem(p), null, p);
    }
  });

  test("invalid patterns, each with its reason", () => {
    const cases: Array<[unknown, RegExp]> = [
      ["a.>.b", /'>' must be the last token/],
      [">.a", /'>' must be the last token/],
      ["a*", /stand alone/],
      ["*a.b", /stand alone/],
      ["a.b>", /stand alone/],
      ["a..b", /empty token/],
      ["a.", /empty token/],
      [".a", /empty token/],
      ["", /must not be empty/],
      [7, /must be a string/],
      ["a b", /may only contain/],
      ["a:b", /may only contain/],
      ["caf\u00e9", /may only contain/],
      ["x".repeat(201), /longer than 200 bytes/],
      [Array(17).fill("a").join("."), /more than 16 tokens/],
    ];
    for (const [p, reason] of cases) assert.match(patternProblem(p) ?? "(valid)", reason, String(p));
  });

  test("ChannelPatterns.of refuses an invalid pattern instead of skipping or widening it", () => {
    for (const bad of [["news", "a.>.b"], ["news", ""], ["a*"]]) {
      assert.throws(() => ChannelPatterns.of(bad), (e: unknown) => e instanceof HeraldError && e.code === "invalid_pattern", bad.join(","));
    }
    const p = ChannelPatterns.of(["news.>", "chat.*", "plain"]);
    assert.ok(p.matches("news.eu.fr") && p.matches("chat.1") && p.matches("plain"));
    assert.ok(!p.matches("news") && !p.matches("chat.1.2") && !p.matches("plainer"));
  });
});

describe("TokenVerifier claim checks (jose, in-process)", () => {
  const verifier = new TokenVerifier({ secret: TEST_SECRET, algorithms: ["HS256"], clockToleranceSeconds: 5, jwksTimeoutMs: 1000 });
  const refusal = async (claims: Record<string, unknown>) => {
    try {
      await verifier.verify(await hsToken(claims));
    } catch (err) {
      assert.ok(err instanceof AuthError);
      return { code: err.code, reason: err.reason, message: err.message };
    }
    assert.fail("the token was accepted");
  };

  test("an invalid pattern in channels or publish refuses the token (invalid_claim)", async () => {
    assert.deepEqual(await refusal({ sub: "u", channels: ["a.>.b"] }), {
      code: "invalid_token",
      reason: "invalid_claim",
      message: "token claim 'channels' has an invalid pattern 'a.>.b': '>' must be the last token",
    });
    assert.equal((await refusal({ sub: "u", publish: ["ok", "a*"] })).reason, "invalid_claim");
    assert.equal((await refusal({ sub: "u", channels: ["user:alice"] })).reason, "invalid_claim", "user: grants are for publish only");
    assert.equal((await refusal({ sub: "u", publish: ["user:" + "x".repeat(257)] })).reason, "invalid_claim");
  });

  test("user: grants in publish are kept for the publisher and never match channels", async () => {
    const id = await verifier.verify(await hsToken({ sub: "u", publish: ["user:*", "user:auth0|42", "chat.*"] }));
    assert.deepEqual(id.publishClaim, ["user:*", "user:auth0|42", "chat.*"]);
    assert.ok(id.publish.matches("chat.1"));
    assert.ok(!id.publish.matches("user"));
  });

  test("HMAC tokens are checked every time (no cache: the check costs what a cache lookup does)", async () => {
    const token = await hsToken({ sub: "checked", channels: ["news"] });
    const [a, b] = [await verifier.verify(token), await verifier.verify(token)];
    assert.notEqual(a, b);
    assert.deepEqual(a, b);
  });

  test("a token verified with a public key is cached: the second verification returns the same identity", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const pem = await exportSPKI(publicKey);
    const es = new TokenVerifier({ publicKeyPem: pem, algorithms: ["ES256"], clockToleranceSeconds: 5, jwksTimeoutMs: 1000 });
    const token = await new SignJWT({ channels: ["news"] }).setProtectedHeader({ alg: "ES256" }).setSubject("cached").setExpirationTime("1h").sign(privateKey);
    assert.equal(await es.verify(token), await es.verify(token));
    assert.equal(es.verifySync(token), await es.verify(token));
  });
});

describe("Bearer challenge (RFC 6750 / RFC 7230 quoted-string)", () => {
  test("realm only for a missing token; error and description otherwise", () => {
    assert.equal(bearerChallenge(), 'Bearer realm="herald"');
    assert.equal(bearerChallenge({ reason: "missing", message: "no token" }), 'Bearer realm="herald"');
    assert.equal(
      bearerChallenge({ reason: "bad_signature", message: "token signature does not verify" }),
      'Bearer realm="herald", error="invalid_token", error_description="token signature does not verify"',
    );
  });

  test("quotes and backslashes are escaped, non-ASCII and control characters replaced", () => {
    assert.equal(
      bearerChallenge({ reason: "malformed", message: 'a "b" \\ c\u00e9\r\n' }),
      'Bearer realm="herald", error="invalid_token", error_description="a \\"b\\" \\\\ c???"',
    );
  });

  test("values echoed from a token are short, quoted and safe", () => {
    assert.equal(quoteClaimValue("a.>.b"), "'a.>.b'");
    assert.equal(quoteClaimValue('a"b\'c\\d\u00e9'), "'a?b?c?d?'");
    assert.equal(quoteClaimValue("x".repeat(50)), `'${"x".repeat(40)}...'`);
  });
});
