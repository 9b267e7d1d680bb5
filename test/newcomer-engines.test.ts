/**
 * `npm ci` must install without EBADENGINE warnings on every Node version the
 * root package.json admits (issue 8: a fresh checkout printed ~20 of them
 * because dev tools wanted Node >= 22).
 *
 * Reads package-lock.json, so it checks exactly what `npm ci` installs,
 * including transitive packages, without touching the network. A package
 * passes when its `engines.node` range contains every version the root range
 * allows (semver.subset), not merely the Node running the test: a range that
 * works on 20.20 but not on 20.6 would still warn for someone on 20.6.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import semver from "semver";
import { REPO_ROOT } from "./helpers/procs.js";

interface LockEntry {
  version?: string;
  engines?: { node?: string } | string[];
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(path.join(REPO_ROOT, file), "utf8")) as T;
}

test("every package in package-lock.json accepts every Node version the root engines range allows", () => {
  const root = readJson<{ engines?: { node?: string } }>("package.json");
  const wanted = root.engines?.node;
  assert.ok(wanted && semver.validRange(wanted), `root package.json needs a valid engines.node (got ${wanted})`);

  const lock = readJson<{ packages: Record<string, LockEntry> }>("package-lock.json");
  const offenders: string[] = [];
  let checked = 0;
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (where === "") continue; // the root itself
    // Old packages sometimes carry the pre-npm-3 array form, which npm ignores.
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
    if (range === undefined) continue;
    checked++;
    const valid = semver.validRange(range);
    if (valid === null) {
      offenders.push(`${where}@${entry.version}: unparsable engines.node "${range}"`);
    } else if (!semver.subset(wanted, valid)) {
      offenders.push(`${where}@${entry.version}: engines.node "${range}" excludes part of "${wanted}"`);
    }
  }
  assert.ok(checked > 20, `expected many packages with an engines field, saw ${checked}`);
  assert.deepEqual(offenders, [], "pick versions that support the root engines range (npm view <pkg>@<version> engines)");
});

test("the running Node satisfies the root engines range (the suite runs on a supported version)", () => {
  const root = readJson<{ engines: { node: string } }>("package.json");
  assert.ok(semver.satisfies(process.versions.node, root.engines.node), `node ${process.versions.node} vs ${root.engines.node}`);
});
