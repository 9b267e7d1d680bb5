/**
 * Every way the gateway is started sets the glibc tunable that returns memory
 * freed after stalled sockets (services/gateway/src/malloc-tunables.ts): the
 * npm scripts and the image. The value is written in three places that cannot
 * import it; this keeps them equal.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { SEMI_SPACE_FLAG, semiSpaceCapped } from "../services/gateway/src/heap-flags.js";
import { GLIBC_TUNABLES_DEFAULT } from "../services/gateway/src/malloc-tunables.js";
import { REPO_ROOT } from "./helpers/procs.js";

test("npm start, npm run gateway and the gateway image set GLIBC_TUNABLES", () => {
  const scripts = (JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
  for (const name of ["start", "gateway"]) {
    assert.ok(scripts[name]?.includes(`GLIBC_TUNABLES=\${GLIBC_TUNABLES:-${GLIBC_TUNABLES_DEFAULT}}`), `npm run ${name}: ${scripts[name]}`);
  }
  const dockerfile = readFileSync(path.join(REPO_ROOT, "services/gateway/Dockerfile"), "utf8");
  assert.match(dockerfile, new RegExp(`GLIBC_TUNABLES=${GLIBC_TUNABLES_DEFAULT.replace(/\./g, "\\.")}`));
});

test("npm start, npm run gateway and the gateway image cap V8's young generation", () => {
  const scripts = (JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
  for (const name of ["start", "gateway"]) assert.ok(scripts[name]?.includes(`node ${SEMI_SPACE_FLAG} `), `npm run ${name}: ${scripts[name]}`);
  const dockerfile = readFileSync(path.join(REPO_ROOT, "services/gateway/Dockerfile"), "utf8");
  assert.ok(dockerfile.includes(`CMD ["node", "${SEMI_SPACE_FLAG}", "services/gateway/dist/main.js"]`));
});

test("the semi-space cap is recognised on the command line and in NODE_OPTIONS", () => {
  assert.ok(semiSpaceCapped(["--max-semi-space-size=1"], undefined));
  assert.ok(semiSpaceCapped([], "--enable-source-maps --max_semi_space_size=2"));
  assert.ok(!semiSpaceCapped(["--max-old-space-size=512"], "--max-semi-space-sizes"));
});
