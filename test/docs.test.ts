/**
 * The repository documents its own protocol (docs/protocol.md, issue 8):
 * every error code, close code, client and server frame type and upgrade
 * refusal the code defines appears in the right section of the reference,
 * read from the code itself (the exported CloseCode object, and the type
 * unions and frame builders through the TypeScript compiler), so adding a
 * code without documenting it fails here. Every relative link in README.md
 * and docs/*.md resolves to a file in the repository (and to a heading, for
 * links with a #fragment), and nothing links to the external contract
 * outside the repository, which a clone does not have.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { CloseCode } from "../packages/core/src/close-codes.js";
import {
  ackFrame,
  channelMessageHead,
  errorFrame,
  messageFrame,
  pongFrame,
  replyFrame,
  subscribedWithPosition,
  userMessageHead,
  welcomeFrame,
} from "../packages/core/src/protocol.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CORE = path.join(ROOT, "packages/core/src");
const PROTOCOL_MD = path.join(ROOT, "docs/protocol.md");

// ---- reading the code ------------------------------------------------------

const program = ts.createProgram(
  ["errors.ts", "metrics.ts", "protocol.ts"].map((f) => path.join(CORE, f)),
  { noEmit: true, skipLibCheck: true, types: [], target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext },
);
const checker = program.getTypeChecker();

function sourceOf(file: string): ts.SourceFile {
  const sf = program.getSourceFile(path.join(CORE, file));
  assert.ok(sf, `${file} is part of the program`);
  return sf;
}

/** String literal members of a type (a literal or a union of literals). */
function literals(type: ts.Type): string[] {
  const members = type.isUnion() ? type.types : [type];
  return members.filter((t): t is ts.StringLiteralType => t.isStringLiteral()).map((t) => t.value);
}

/** The string literals of an exported type alias, e.g. ProtocolErrorCode = "a" | "b". */
function unionOf(file: string, alias: string): string[] {
  const sf = sourceOf(file);
  const decl = sf.statements.find((s): s is ts.TypeAliasDeclaration => ts.isTypeAliasDeclaration(s) && s.name.text === alias);
  assert.ok(decl, `${file} declares type ${alias}`);
  const values = literals(checker.getTypeAtLocation(decl.name));
  assert.ok(values.length > 0, `${alias} resolves to string literals`);
  return values;
}

/**
 * The `type` values of the frames the server builds: every object literal's
 * `type` property and every `"type":"..."` text inside the exported frame
 * builders of protocol.ts (everything except the client-frame parsing).
 */
function serverFrameTypes(): string[] {
  const sf = sourceOf("protocol.ts");
  const parsing = new Set(["parseClientFrame", "peekRequestId"]);
  const found = new Set<string>();
  const visit = (node: ts.Node): void => {
    if ((ts.isPropertyAssignment(node) || ts.isShorthandPropertyAssignment(node)) && node.name.getText(sf) === "type") {
      for (const v of literals(checker.getTypeAtLocation(ts.isPropertyAssignment(node) ? node.initializer : node.name))) found.add(v);
    }
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node)) {
      for (const m of node.text.matchAll(/"type":"([a-z_]+)"/g)) found.add(m[1]!);
    }
    ts.forEachChild(node, visit);
  };
  for (const s of sf.statements) {
    if (ts.isFunctionDeclaration(s) && s.name && !parsing.has(s.name.text) && ts.getCombinedModifierFlags(s) & ts.ModifierFlags.Export) visit(s);
    // Frame parts kept in constants (e.g. const HEAD = Buffer.from('{"type":...')).
    if (ts.isVariableStatement(s)) visit(s);
  }
  return [...found];
}

// ---- reading the docs --------------------------------------------------------

function read(file: string): string {
  assert.ok(existsSync(file), `${path.relative(ROOT, file)} exists`);
  return readFileSync(file, "utf8");
}

/** The text of the `## ` section whose title matches, up to the next `## `. */
function section(md: string, title: RegExp): string {
  const parts = md.split(/^(?=## )/m);
  const found = parts.find((p) => title.test(p.split("\n", 1)[0]!));
  assert.ok(found, `docs/protocol.md has a "## " section matching ${title}`);
  return found;
}

function missingFrom(text: string, values: readonly string[], render: (v: string) => string): string[] {
  return values.filter((v) => !text.includes(render(v)));
}

describe("docs/protocol.md documents what the code implements", () => {
  test("every ProtocolErrorCode has a row in the error code table", () => {
    const codes = unionOf("errors.ts", "ProtocolErrorCode");
    const table = section(read(PROTOCOL_MD), /error codes/i);
    const missing = missingFrom(table, codes, (c) => `| \`${c}\` |`);
    assert.deepEqual(missing, [], `error codes missing from "Error codes" in docs/protocol.md: ${missing.join(", ")}`);
  });

  test("every CloseCode has a row in the close code table", () => {
    const codes = Object.values(CloseCode).map(String);
    assert.ok(codes.length > 0);
    const table = section(read(PROTOCOL_MD), /close codes/i);
    const missing = missingFrom(table, codes, (c) => `| \`${c}\` |`);
    assert.deepEqual(missing, [], `close codes missing from "Close codes" in docs/protocol.md: ${missing.join(", ")}`);
  });

  test("every client frame type is shown in the client frames section", () => {
    const types = unionOf("protocol.ts", "ClientFrameType");
    const text = section(read(PROTOCOL_MD), /client frames/i);
    const missing = missingFrom(text, types, (t) => `"type":"${t}"`);
    assert.deepEqual(missing, [], `client frame types without an example in "Client frames": ${missing.join(", ")}`);
  });

  test("every server frame type the code builds is shown in the server frames section", () => {
    const types = serverFrameTypes();
    // The scan above must at least see what the builders actually produce.
    const built = [
      welcomeFrame("u", "c"),
      replyFrame("subscribed", "a", 1),
      replyFrame("unsubscribed", "a", 1),
      subscribedWithPosition("a", 1, 2, "e1", true),
      ackFrame(1),
      pongFrame(1),
      errorFrame("bad_request", "m", 1),
      messageFrame(channelMessageHead("a"), new TextEncoder().encode("{}")).toString(),
      messageFrame(userMessageHead("u"), new Uint8Array([0xff])).toString(),
    ].map((f) => (JSON.parse(f) as { type: string }).type);
    for (const t of built) assert.ok(types.includes(t), `the source scan finds the built frame type ${t} (found: ${types.join(", ")})`);

    const text = section(read(PROTOCOL_MD), /server frames/i);
    const missing = missingFrom(text, types, (t) => `"type":"${t}"`);
    assert.deepEqual(missing, [], `server frame types without an example in "Server frames": ${missing.join(", ")}`);
  });

  test("every upgrade reason is named in the HTTP refusals section", () => {
    const reasons = unionOf("metrics.ts", "UpgradeReason");
    const text = section(read(PROTOCOL_MD), /http refusals/i);
    const missing = missingFrom(text, reasons, (r) => `\`${r}\``);
    assert.deepEqual(missing, [], `upgrade reasons missing from "HTTP refusals" in docs/protocol.md: ${missing.join(", ")}`);
  });
});

// ---- links -------------------------------------------------------------------

interface Link {
  line: number;
  target: string;
}

/** Markdown text with fenced code blocks and inline code blanked out (line numbers kept). */
function prose(md: string): string {
  return md
    .replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, (block) => block.replace(/[^\n]/g, " "))
    .replace(/`[^`\n]*`/g, (code) => " ".repeat(code.length));
}

/** Inline links and images `[x](target)`, reference definitions `[x]: target`, and HTML href/src. */
function linksOf(md: string): Link[] {
  const text = prose(md);
  const out: Link[] = [];
  const lineAt = (index: number) => text.slice(0, index).split("\n").length;
  for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ line: lineAt(m.index), target: m[1]! });
  for (const m of text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) out.push({ line: lineAt(m.index), target: m[1]! });
  for (const m of text.matchAll(/\b(?:href|src)\s*=\s*"([^"]+)"/g)) out.push({ line: lineAt(m.index), target: m[1]! });
  return out;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(md: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const text = md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
  for (const m of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = m[1]!
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
      .replace(/<[^>]+>/g, "")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of md.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(m[1]!);
  return anchors;
}

/** Problems with the relative links of one Markdown file (repository-relative path). */
function brokenLinks(file: string): string[] {
  const abs = path.join(ROOT, file);
  const md = read(abs);
  const problems: string[] = [];
  for (const { line, target } of linksOf(md)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//")) continue; // absolute URL, mailto:
    const [rawPath = "", fragment] = target.split("#", 2) as [string, string | undefined];
    const pathPart = decodeURIComponent(rawPath.split("?", 1)[0]!);
    const resolved = pathPart === "" ? abs : path.resolve(path.dirname(abs), pathPart);
    const where = `${file}:${line} links to ${target}`;
    const rel = path.relative(ROOT, resolved);
    if (rel.startsWith("..") || path.isAbsolute(rel)) {
      problems.push(`${where}, which is outside the repository (a clone does not have it)`);
      continue;
    }
    if (!existsSync(resolved)) {
      problems.push(`${where}, which does not exist`);
      continue;
    }
    if (fragment && resolved.endsWith(".md") && statSync(resolved).isFile() && !anchorsOf(readFileSync(resolved, "utf8")).has(fragment)) {
      problems.push(`${where}: ${rel} has no heading with the anchor #${fragment}`);
    }
  }
  return problems;
}

/** Files of the repository: tracked and untracked-but-not-ignored (git), or a walk without node_modules/.git/dist. */
function repositoryFiles(): string[] {
  try {
    const out = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    return out.split("\0").filter((f) => f !== "" && existsSync(path.join(ROOT, f)));
  } catch {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        if (["node_modules", ".git", "dist"].includes(entry.name)) continue;
        const rel = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(rel);
        else if (entry.isFile()) files.push(rel);
      }
    };
    walk("");
    return files;
  }
}

describe("links", () => {
  test("every relative link in docs/*.md resolves to a file (and heading) in the repository", () => {
    const files = readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`);
    for (const required of ["docs/README.md", "docs/protocol.md", "docs/publisher-api.md"]) {
      assert.ok(files.includes(required), `${required} exists`);
    }
    const problems = files.flatMap(brokenLinks);
    assert.deepEqual(problems, [], problems.join("\n"));
  });

  test("every relative link in README.md resolves to a file (and heading) in the repository", () => {
    const problems = brokenLinks("README.md");
    assert.deepEqual(problems, [], `README.md has broken links (link docs/protocol.md or docs/publisher-api.md instead of anything outside the repository):\n${problems.join("\n")}`);
  });

  test("no file in the repository links to the shared contract outside it", () => {
    // Built from parts so this file does not match itself.
    const needle = [".."].concat("shared").join("/");
    const hits: string[] = [];
    for (const file of repositoryFiles()) {
      const abs = path.join(ROOT, file);
      if (statSync(abs).size > 4 * 1024 * 1024) continue;
      const bytes = readFileSync(abs);
      if (bytes.includes(0)) continue; // binary
      const lines = bytes.toString("utf8").split("\n");
      lines.forEach((text, i) => {
        if (text.includes(needle)) hits.push(`${file}:${i + 1}: ${text.trim().slice(0, 160)}`);
      });
    }
    assert.deepEqual(hits, [], `these lines point at ${needle}, which a clone of the repository does not have; link docs/protocol.md or docs/publisher-api.md instead:\n${hits.join("\n")}`);
  });
});
