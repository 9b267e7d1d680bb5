/**
 * The SDK's close-code policy (packages/client/src/close-policy.ts) as a
 * table: what a welcomed connection's close code makes the client do.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { closeVerdict, openFailureVerdict } from "../packages/client/src/close-policy.js";

test("close codes: terminal, new token, drain or retry", () => {
  const kinds = (staticToken: boolean) =>
    Object.fromEntries([1000, 1001, 1002, 1006, 1008, 1009, 1011, 4001, 4003, 4008, 4009, 4010, 4011].map((c) => [c, closeVerdict(c, "", staticToken).kind]));
  assert.deepEqual(kinds(false), {
    1000: "retry",
    1001: "drain",
    1002: "terminal",
    1006: "retry",
    1008: "retry",
    1009: "retry",
    1011: "retry",
    4001: "new_token",
    4003: "terminal",
    4008: "retry",
    4009: "retry",
    4010: "retry",
    4011: "new_token",
  });
  assert.deepEqual([closeVerdict(4011, "", true).kind, closeVerdict(4011, "", true).code], ["terminal", "revoked"], "a static revoked token is the end");
  assert.equal(closeVerdict(4001, "", true).kind, "terminal", "a static token cannot be renewed");
  const rateLimited = closeVerdict(4008, "", false);
  assert.ok(rateLimited.kind === "retry" && rateLimited.rateLimited === true, "4008 waits the longer rate-limited floor");
  assert.equal(closeVerdict(1002, "", false).code, "protocol_error");
  assert.equal(closeVerdict(4003, "", false).code, "policy_violation");
  assert.match(closeVerdict(1006, "reset", false).message, /1006: reset/);
});

test("after a 4011, the replacement token refused too (HTTP 401, or a close a browser cannot explain) is terminal", () => {
  const base = { tokenExpired: false, staticToken: false, failedOpens: 1 };
  for (const status of [401, undefined]) {
    const v = openFailureVerdict({ ...base, status, afterRevocation: true });
    assert.deepEqual([v.kind, v.kind === "terminal" && v.code], ["terminal", "revoked"]);
  }
  assert.equal(openFailureVerdict({ ...base, status: 503, afterRevocation: true }).kind, "retry", "a busy gateway is not a refusal");
  assert.equal(openFailureVerdict({ ...base, status: undefined, afterRevocation: false }).kind, "retry");
});
