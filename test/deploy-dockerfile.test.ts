/**
 * Static checks of the service Dockerfiles and .dockerignore (no Docker
 * engine runs here): multi-stage with `npm ci` in a build stage, production
 * dependencies and built JS only in the final stage, a numeric non-root USER,
 * a HEALTHCHECK without curl/wget, a substitutable glibc base image, no
 * `latest` tags and no secrets in the image.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { REPO_ROOT, readText, repoPath } from "./deploy/util.js";
import { SEMI_SPACE_FLAG } from "../services/gateway/src/heap-flags.js";

const SERVICES = [
  { name: "gateway", port: 8080, portVar: "GATEWAY_PORT", workspace: "@herald/gateway" },
  { name: "publisher", port: 8081, portVar: "PUBLISHER_PORT", workspace: "@herald/publisher" },
] as const;

interface Stage {
  name: string | undefined;
  base: string;
  instructions: Instruction[];
}

function stagesOf(file: string): { args: Map<string, string>; stages: Stage[]; text: string } {
  const text = readText(file);
  const df = DockerfileParser.parse(text);
  const args = new Map<string, string>();
  for (const a of df.getInitialARGs()) {
    const p = a.getProperty();
    if (p) args.set(p.getName(), p.getValue() ?? "");
  }
  const stages: Stage[] = [];
  for (const ins of df.getInstructions()) {
    const kw = ins.getKeyword();
    if (kw === "FROM") {
      const from = df.getFROMs().find((f) => f.getRange().start.line === ins.getRange().start.line)!;
      stages.push({ name: from.getBuildStage() ?? undefined, base: from.getImage() ?? "", instructions: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  return { args, stages, text };
}

/** Resolves ${ARG} / $ARG against the ARG defaults declared before the first FROM. */
function resolve(value: string, args: Map<string, string>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get((a ?? b)!) ?? "");
}

/** The instruction's full source text, continuation lines included. */
function sourceOf(text: string, ins: Instruction): string {
  const r = ins.getRange();
  return text.split("\n").slice(r.start.line, r.end.line + 1).join("\n");
}

function copyFrom(ins: Instruction): string | undefined {
  const flag = (ins as unknown as { getFromFlag?: () => { getValue(): string | null } | null }).getFromFlag?.();
  return flag?.getValue() ?? undefined;
}

function copySources(ins: Instruction): string[] {
  const a = ins.getArguments().map((x) => x.getValue());
  return a.slice(0, -1);
}

/** Highest GLIBC_x.y symbol version an ELF shared object asks for. */
function maxGlibc(file: string): [number, number] {
  const text = readFileSync(file).toString("latin1");
  let best: [number, number] = [0, 0];
  for (const m of text.matchAll(/GLIBC_(\d+)\.(\d+)/g)) {
    const v: [number, number] = [Number(m[1]), Number(m[2])];
    if (v[0] > best[0] || (v[0] === best[0] && v[1] > best[1])) best = v;
  }
  return best;
}

for (const svc of SERVICES) {
  const file = repoPath("services", svc.name, "Dockerfile");

  test(`Dockerfile (${svc.name}): base image is ARG NODE_IMAGE=node:20-bookworm-slim, pinned, never latest`, () => {
    const { args, stages } = stagesOf(file);
    assert.equal(args.get("NODE_IMAGE"), "node:20-bookworm-slim", "ARG NODE_IMAGE default before the first FROM");
    const stageNames = new Set(stages.map((s) => s.name).filter(Boolean));
    for (const s of stages) {
      if (stageNames.has(s.base)) continue; // FROM an earlier stage
      assert.match(s.base, /\$\{?NODE_IMAGE\}?/, `stage ${s.name ?? "?"} must be FROM \${NODE_IMAGE} so a mirror can be substituted`);
      const image = resolve(s.base, args);
      assert.ok(image.includes(":"), `${image}: tag required`);
      assert.doesNotMatch(image, /:latest$/, `${image}: no latest tags`);
      // glibc base: the uWebSockets.js binary does not load on musl (alpine).
      assert.match(image, /bookworm/, `${image}: must be Debian bookworm (glibc)`);
    }
  });

  test(`Dockerfile (${svc.name}): multi-stage, npm ci in a build stage, production deps and dist only in the final stage`, () => {
    const { stages, text } = stagesOf(file);
    assert.ok(stages.length >= 2, "multi-stage build");
    const final = stages[stages.length - 1]!;
    const earlier = stages.slice(0, -1);
    const runs = (s: Stage) => s.instructions.filter((i) => i.getKeyword() === "RUN").map((i) => i.getArgumentsContent() ?? "");

    assert.ok(earlier.some((s) => runs(s).some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r))), "a build stage runs npm ci (with dev deps, for tsc)");
    assert.ok(earlier.some((s) => runs(s).some((r) => /\btsc -b\b/.test(r))), "a build stage compiles with tsc -b");
    const prod = earlier.find((s) => runs(s).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)));
    assert.ok(prod, "a stage installs production dependencies only (npm ci --omit=dev)");
    assert.ok(runs(prod).some((r) => r.includes(`--workspace=${svc.workspace}`)), `production install is limited to ${svc.workspace}`);

    assert.ok(!runs(final).some((r) => /\bnpm (ci|install|i)\b|\bnpx \w|\btsc\b/.test(r)), "the final stage installs and compiles nothing");
    // The final stage takes files only from earlier stages, never from the context.
    const copies = final.instructions.filter((i) => i.getKeyword() === "COPY" || i.getKeyword() === "ADD");
    assert.ok(copies.length > 0);
    for (const c of copies) {
      assert.equal(c.getKeyword(), "COPY", "ADD is not used");
      const from = copyFrom(c);
      assert.ok(from && earlier.some((s) => s.name === from), `final-stage ${sourceOf(text, c)} must copy --from an earlier stage`);
      for (const src of copySources(c)) {
        assert.ok(/\/(node_modules|dist)$|\/package\.json$/.test(src), `final stage copies only node_modules, dist and package.json, got ${src}`);
        assert.ok(!/\/src$|\.ts$|tsconfig/.test(src), `no TypeScript sources in the final image: ${src}`);
      }
    }
    assert.ok(copies.some((c) => copySources(c).some((s) => s.endsWith(`services/${svc.name}/dist`))), `copies services/${svc.name}/dist`);
    // Package managers are not needed at run time.
    assert.ok(runs(final).some((r) => r.includes("/usr/local/lib/node_modules/npm") && /\brm\b/.test(r)), "npm is removed from the final stage");
  });

  test(`Dockerfile (${svc.name}): non-root numeric USER, HEALTHCHECK via node, exec-form CMD`, () => {
    const { stages, text } = stagesOf(file);
    const final = stages[stages.length - 1]!;
    const users = final.instructions.filter((i) => i.getKeyword() === "USER");
    assert.ok(users.length > 0, "final stage sets USER");
    const user = users[users.length - 1]!.getArgumentsContent() ?? "";
    assert.match(user, /^\d+(:\d+)?$/, "numeric uid[:gid] so Kubernetes runAsNonRoot can verify it");
    assert.notEqual(Number(user.split(":")[0]), 0, "not root");

    const hc = final.instructions.filter((i) => i.getKeyword() === "HEALTHCHECK");
    assert.equal(hc.length, 1, "one HEALTHCHECK");
    const hcText = sourceOf(text, hc[0]!);
    assert.match(hcText, /CMD \["node", "-e"/, "health check runs node in exec form");
    assert.match(hcText, /\/healthz/);
    assert.match(hcText, new RegExp(`${svc.portVar}\\b.*${svc.port}`), `probes ${svc.portVar} (default ${svc.port})`);
    assert.doesNotMatch(hcText, /\b(curl|wget)\b/, "no curl/wget in the image");
    assert.match(hcText, /--interval=\d+s/);
    assert.match(hcText, /--timeout=\d+s/);

    const cmd = final.instructions.filter((i) => i.getKeyword() === "CMD");
    assert.equal(cmd.length, 1);
    // The gateway caps V8's young generation (services/gateway/src/heap-flags.ts).
    const flags = svc.name === "gateway" ? `"${SEMI_SPACE_FLAG}", ` : "";
    assert.equal(cmd[0]!.getArgumentsContent(), `["node", ${flags}"services/${svc.name}/dist/main.js"]`);
    assert.ok(existsSync(repoPath("services", svc.name, "src", "main.ts")), "the entry point source exists");
    const tsconfig = JSON.parse(readText(repoPath("services", svc.name, "tsconfig.json"))) as { compilerOptions: { outDir: string } };
    assert.equal(tsconfig.compilerOptions.outDir, "dist", "tsc writes the file CMD runs");

    const expose = final.instructions.find((i) => i.getKeyword() === "EXPOSE");
    assert.equal(expose?.getArgumentsContent(), String(svc.port));
    const stop = final.instructions.find((i) => i.getKeyword() === "STOPSIGNAL");
    assert.equal(stop?.getArgumentsContent(), "SIGTERM");
  });

  test(`Dockerfile (${svc.name}): no secrets in the image, every COPY source exists`, () => {
    const { stages } = stagesOf(file);
    for (const s of stages) {
      for (const ins of s.instructions) {
        const kw = ins.getKeyword();
        const text = ins.getArgumentsContent() ?? "";
        if (kw === "ENV" || kw === "ARG") {
          assert.doesNotMatch(text, /(SECRET|PASSWORD|API_KEY|TOKEN|PRIVATE)/i, `no credentials in ${kw}: ${text}`);
        }
        if (kw === "COPY" || kw === "ADD") {
          for (const src of copySources(ins)) {
            assert.doesNotMatch(src, /(^|\/)\.env|\.pem$|\.key$|id_rsa|secret/i, `${src} looks like a secret`);
            assert.doesNotMatch(src, /^https?:/, "no remote ADD");
            if (!copyFrom(ins)) {
              assert.ok(existsSync(path.join(REPO_ROOT, src)), `COPY source ${src} exists in the build context (repo root)`);
            }
          }
        }
      }
    }
  });
}

test("Dockerfile (gateway): the uWebSockets.js binary for Node 20 exists and needs no glibc newer than bookworm's (2.36)", () => {
  const { text } = stagesOf(repoPath("services/gateway/Dockerfile"));
  // The Dockerfile keeps only uws_<platform>_<arch>_<abi>.node and checks it loads.
  assert.match(text, /process\.versions\.modules/);
  assert.match(text, /require\(process\.argv\[1\]\)\.App[\s\S]*binaries\/\$keep/, "the build loads the native binary itself (not the JS fallback) and fails if it does not load");
  const dir = repoPath("node_modules/uWebSockets.js/binaries");
  assert.ok(existsSync(dir), "uWebSockets.js is installed (npm ci)");
  // Node 20's module ABI is 115; the image may be built for amd64 or arm64.
  for (const arch of ["x64", "arm64"]) {
    const bin = path.join(dir, `uws_linux_${arch}_115.node`);
    assert.ok(existsSync(bin), `${path.basename(bin)} is shipped`);
    const [maj, min] = maxGlibc(bin);
    assert.ok(maj === 2 && min <= 36, `${path.basename(bin)} needs GLIBC_${maj}.${min}, bookworm has 2.36`);
  }
  assert.ok(readdirSync(dir).length > 1);
});

test(".dockerignore keeps host builds, VCS data and secrets out of the build context", () => {
  const lines = readText(repoPath(".dockerignore"))
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  for (const required of ["**/node_modules", "**/dist", ".git", ".env", ".env.*"]) {
    assert.ok(lines.includes(required), `.dockerignore lists ${required}`);
  }
  assert.ok(!lines.some((l) => l.startsWith("!") && /\.env|\.pem|\.key/.test(l)), "nothing secret is re-included");
  // Sources the Dockerfiles COPY must not be excluded.
  for (const needed of ["packages", "services", "package.json", "package-lock.json", "tsconfig.json", "tsconfig.base.json", ".npmrc"]) {
    assert.ok(!lines.includes(needed) && !lines.includes(`${needed}/`), `${needed} stays in the context`);
  }
});
