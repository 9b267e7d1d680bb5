/**
 * The synchronous static-key verifier (packages/core/src/static-key-jws.ts)
 * against jose, token by token: every algorithm Herald allows verifies, and
 * every forged, tampered, expired, confused or malformed token is refused
 * with the reason a jose verification of the same token gives. The gateway
 * upgrades synchronously on this path, so it must be exactly as strict.
 */
import assert from "node:assert/strict";
import { createPublicKey, type KeyObject } from "node:crypto";
import { describe, test } from "node:test";
import { SignJWT, errors as joseErrors, generateKeyPair, jwtVerify, type CryptoKey, type JWTVerifyOptions } from "jose";
import { AuthError } from "../packages/core/src/errors.js";
import { verifyWithStaticKey, type StaticKeys } from "../packages/core/src/static-key-jws.js";
import { nowSeconds, noneToken, tamper } from "./helpers/tokens.js";

const SECRET = "static-key-jws-test-secret-0123456789abcdef";
const ALL = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

/** jose's verdict on the same token as a reason (the mapping the gateway applies to jose's errors). */
async function joseReason(token: string, key: Uint8Array | KeyObject, opts: JWTVerifyOptions): Promise<string> {
  try {
    await jwtVerify(token, key, opts);
    return "ok";
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) return "expired";
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.reason === "missing") return "missing_claim";
      if (err.reason === "invalid") return "invalid_claim";
      return { nbf: "not_yet_valid", iss: "wrong_issuer", aud: "wrong_audience" }[err.claim] ?? `claim:${err.claim}`;
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed) return "algorithm_not_allowed";
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "bad_signature";
    return "malformed";
  }
}

function staticReason(token: string, keys: StaticKeys): string {
  try {
    verifyWithStaticKey(token, keys);
    return "ok";
  } catch (err) {
    assert.ok(err instanceof AuthError, `not an AuthError: ${String(err)}`);
    return err.reason;
  }
}

async function keyPair(alg: string): Promise<{ privateKey: CryptoKey; publicKey: KeyObject }> {
  const pair = await generateKeyPair(alg, { extractable: true });
  return { privateKey: pair.privateKey, publicKey: createPublicKey(await exportPem(pair.publicKey)) };
}

async function exportPem(key: CryptoKey): Promise<string> {
  const { exportSPKI } = await import("jose");
  return exportSPKI(key);
}

describe("static-key verification agrees with jose", () => {
  test("every allowed algorithm verifies; a tampered signature is bad_signature on both", async () => {
    for (const alg of ALL) {
      const hmac = alg.startsWith("HS");
      const pair = hmac ? undefined : await keyPair(alg);
      const signingKey = hmac ? new TextEncoder().encode(SECRET) : pair!.privateKey;
      const verifyKey = hmac ? new TextEncoder().encode(SECRET) : pair!.publicKey;
      const keys: StaticKeys = {
        secret: hmac ? Buffer.from(SECRET) : undefined,
        publicKey: pair?.publicKey,
        algorithms: [alg],
        clockToleranceSeconds: 5,
        issuer: undefined,
        audience: undefined,
      };
      const token = await new SignJWT({ channels: ["a"] }).setProtectedHeader({ alg }).setSubject("u").setExpirationTime("1h").sign(signingKey);
      assert.equal(staticReason(token, keys), "ok", alg);
      const forged = tamper(token);
      assert.equal(staticReason(forged, keys), "bad_signature", `${alg} tampered`);
      assert.equal(await joseReason(forged, verifyKey, { algorithms: [alg] }), "bad_signature", `${alg} tampered (jose)`);
    }
  });

  test("forged, confused, expired and malformed tokens get jose's reason", async () => {
    const rsa = await keyPair("RS256");
    const ec = await keyPair("ES256");
    const hsKey = new TextEncoder().encode(SECRET);
    const now = nowSeconds();
    const hs = (claims: Record<string, unknown>, alg = "HS256") => new SignJWT(claims).setProtectedHeader({ alg }).sign(hsKey);
    const rs = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(rsa.privateKey);
    const base = { sub: "u", exp: now + 3600, iss: "https://issuer.test/", aud: "herald" };
    const hsKeys: StaticKeys = {
      secret: Buffer.from(SECRET),
      publicKey: undefined,
      algorithms: ["HS256"],
      clockToleranceSeconds: 5,
      issuer: "https://issuer.test/",
      audience: "herald",
    };
    const rsKeys: StaticKeys = { ...hsKeys, secret: undefined, publicKey: rsa.publicKey, algorithms: ["RS256", "ES256"] };
    const joseOpts: JWTVerifyOptions = { algorithms: ["HS256"], clockTolerance: 5, issuer: "https://issuer.test/", audience: "herald", requiredClaims: ["exp", "sub"] };

    const cases: Array<[string, string, StaticKeys, Uint8Array | KeyObject, JWTVerifyOptions]> = [
      ["valid", await hs(base), hsKeys, hsKey, joseOpts],
      ["alg none", noneToken(base), hsKeys, hsKey, joseOpts],
      ["HS384 not allowed", await hs(base, "HS384"), hsKeys, hsKey, joseOpts],
      ["expired", await hs({ ...base, exp: now - 60 }), hsKeys, hsKey, joseOpts],
      ["expired within tolerance", await hs({ ...base, exp: now - 2 }), hsKeys, hsKey, joseOpts],
      ["nbf in the future", await hs({ ...base, nbf: now + 600 }), hsKeys, hsKey, joseOpts],
      ["no sub", await hs({ exp: base.exp, iss: base.iss, aud: base.aud }), hsKeys, hsKey, joseOpts],
      ["no exp", await hs({ sub: "u", iss: base.iss, aud: base.aud }), hsKeys, hsKey, joseOpts],
      ["exp not a number", await hs({ ...base, exp: "soon" }), hsKeys, hsKey, joseOpts],
      ["no iss", await hs({ sub: "u", exp: base.exp, aud: base.aud }), hsKeys, hsKey, joseOpts],
      ["wrong iss", await hs({ ...base, iss: "https://evil.test/" }), hsKeys, hsKey, joseOpts],
      ["wrong aud", await hs({ ...base, aud: "other" }), hsKeys, hsKey, joseOpts],
      ["aud list including ours", await hs({ ...base, aud: ["other", "herald"] }), hsKeys, hsKey, joseOpts],
      ["garbage", "not-a-jwt", hsKeys, hsKey, joseOpts],
      ["two parts", "eyJhbGciOiJIUzI1NiJ9.e30", hsKeys, hsKey, joseOpts],
      ["claims not an object", `${Buffer.from('{"alg":"HS256"}').toString("base64url")}.${Buffer.from("[1]").toString("base64url")}.x`, hsKeys, hsKey, joseOpts],
      ["valid RS256", await rs(base), rsKeys, rsa.publicKey, { ...joseOpts, algorithms: ["RS256", "ES256"] }],
      ["RS256 signed by another key", await new SignJWT(base).setProtectedHeader({ alg: "RS256" }).sign((await keyPair("RS256")).privateKey), rsKeys, rsa.publicKey, { ...joseOpts, algorithms: ["RS256", "ES256"] }],
    ];
    for (const [label, token, keys, key, opts] of cases) {
      const expected = await joseReason(token, key, opts);
      assert.equal(staticReason(token, keys), expected, `${label}: static path vs jose`);
    }

    // Key confusion: an HS256 token "signed" with the RSA public key's PEM,
    // and an ES256 token against an RSA key, never verify.
    const pem = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
    const confusion = await new SignJWT(base).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(pem));
    assert.equal(staticReason(confusion, { ...rsKeys, algorithms: ["RS256", "HS256"] }), "algorithm_not_allowed");
    const ecToken = await new SignJWT(base).setProtectedHeader({ alg: "ES256" }).sign(ec.privateKey);
    assert.equal(staticReason(ecToken, rsKeys), "algorithm_not_allowed");
    // A crit header this server does not understand is refused, as jose does.
    const crit = await new SignJWT(base).setProtectedHeader({ alg: "HS256", crit: ["exp"], exp: 1 } as never).sign(hsKey).catch(() => undefined);
    if (crit) assert.equal(staticReason(crit, hsKeys), "malformed");
  });

  test("a header decoded before still meets each verifier's allow-list, and a refused header stays refused", async () => {
    const hsKey = new TextEncoder().encode(SECRET);
    const base = { sub: "u", exp: nowSeconds() + 3600 };
    const hsKeys: StaticKeys = { secret: Buffer.from(SECRET), publicKey: undefined, algorithms: ["HS256"], clockToleranceSeconds: 5, issuer: undefined, audience: undefined };
    const token = await new SignJWT(base).setProtectedHeader({ alg: "HS256" }).sign(hsKey);
    assert.equal(staticReason(token, hsKeys), "ok");
    assert.equal(staticReason(token, hsKeys), "ok", "the second time, from the decoded-header cache");
    // The cache is shared by every verifier of the process; the algorithm rule is not.
    assert.equal(staticReason(token, { ...hsKeys, algorithms: ["HS512"] }), "algorithm_not_allowed");
    assert.equal(staticReason(token, { ...hsKeys, secret: undefined, algorithms: ["RS256"] }), "algorithm_not_allowed");
    // Same header, other claims or signature: each token's own parts are still checked.
    assert.equal(staticReason(tamper(token), hsKeys), "bad_signature");
    const [h] = token.split(".");
    assert.equal(staticReason(`${h}.e30.${token.split(".")[2]}`, hsKeys), "bad_signature");
    assert.equal(staticReason(`${h}.e30`, hsKeys), "malformed");
    assert.equal(staticReason(`${token}.x`, hsKeys), "malformed", "four parts");
    const crit = `${Buffer.from('{"alg":"HS256","crit":["x"],"x":1}').toString("base64url")}.${token.split(".")[1]}.${token.split(".")[2]}`;
    for (let i = 0; i < 2; i++) assert.equal(staticReason(crit, hsKeys), "malformed", `crit header, try ${i + 1}`);
    // Many distinct headers do not grow the cache without bound (it evicts), and verification stays right.
    for (let i = 0; i < 200; i++) {
      const t = await new SignJWT(base).setProtectedHeader({ alg: "HS256", kid: `k${i}` }).sign(hsKey);
      assert.equal(staticReason(t, hsKeys), "ok");
    }
    assert.equal(staticReason(token, hsKeys), "ok");
  });
});
