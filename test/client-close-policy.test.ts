/**
 * The SDK's close-code policy (packages/client/src/close-policy.ts) as a
 * table: what a welcomed connection's close code makes the client do.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { closeVerdict } from "../packages/client/src/close-policy.js";

test("close codes: terminal, new token, drain or retry", () => {
  const kinds = (staticToken: boolean) =>
    Object.fromEntries([1000, 1001, 1002, 1006, 1008, 1009, 1011, 4001, 4003, 4008, 4009].map((c) => [c, closeVerdict(c, "", staticToken).kind]));
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
  });
  assert.equal(closeVerdict(4001, "", true).kind, "terminal", "a static token cannot be renewed");
  const rateLimited = closeVerdict(4008, "", false);
  assert.ok(rateLimited.kind === "retry" && rateLimited.rateLimited === true, "4008 waits the longer rate-limited floor");
  assert.equal(closeVerdict(1002, "", false).code, "protocol_error");
  assert.equal(closeVerdict(4003, "", false).code, "policy_violation");
  assert.match(closeVerdict(1006, "reset", false).message, /1006: reset/);
});
