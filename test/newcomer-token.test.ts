/**
 * `npm run token` (scripts/token.mjs), issue 8: a token minted by the script
 * is accepted by a real gateway with exactly the rights asked for; bad input
 * is exit 2 with one clear line on stderr and nothing on stdout (so
 * `TOKEN=$(npm run -s token -- ...)` never captures an error as a token).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { runScript } from "./helpers/scripts.js";
import { TEST_SECRET } from "./helpers/tokens.js";
import { withTimeout } from "./helpers/wait.js";
import { connect } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

async function mint(args: string[], env: Record<string, string> = { JWT_SECRET: TEST_SECRET }) {
  const p = runScript("token.mjs", args, env);
  const exit = await withTimeout(p.exited, 15_000, "token.mjs exit");
  return { code: exit.code, stdout: p.stdout, stderr: p.stderr };
}

describe("npm run token", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  const { clients } = stack;
  let gateway: ServiceProcess;

  before(async () => {
    gateway = await stack.gateway(await stack.nats());
  });
  after(() => stack.close());

  test("prints only the token; the gateway grants exactly --channels and --publish", async () => {
    const out = await mint(["--sub", "alice", "--channels", "news.>", "--publish", "chat.*", "--ttl", "1h"]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stderr, "");
    assert.match(out.stdout, /^[^\n]+\n$/, "one line");
    const token = out.stdout.trim();
    assert.match(token, JWT);
    assert.equal(decodeProtectedHeader(token).alg, "HS256");
    const claims = decodeJwt(token);
    assert.equal(claims.sub, "alice");
    assert.ok(claims.exp !== undefined && Math.abs(claims.exp - Math.floor(Date.now() / 1000) - 3600) < 60, `exp about 1 h away: ${claims.exp}`);

    const client = await connect(gateway.wsUrl, { token });
    clients.push(client);
    assert.equal(client.welcome?.["sub"], "alice");
    assert.equal((await client.request({ type: "subscribe", channel: "news.eu", id: 1 })).type, "subscribed");
    const denied = await client.request({ type: "subscribe", channel: "sports", id: 2 });
    assert.equal(denied.type, "error");
    assert.equal(denied["code"], "forbidden");
    assert.equal((await client.request({ type: "publish", channel: "chat.42", data: { hi: 1 }, id: 3 })).type, "ack");
    const noPublish = await client.request({ type: "publish", channel: "news.eu", data: {}, id: 4 });
    assert.equal(noPublish["code"], "forbidden");
  });

  test("--subs and --jti: the gateway subscribes the listed channels at open and the token carries its id", async () => {
    const out = await mint(["--sub", "bob", "--channels", "news.>", "--subs", "news.eu,news.us", "--jti", "t-42"]);
    assert.equal(out.code, 0, out.stderr);
    const token = out.stdout.trim();
    assert.deepEqual([decodeJwt(token)["subs"], decodeJwt(token)["jti"]], [["news.eu", "news.us"], "t-42"]);
    const client = await connect(gateway.wsUrl, { token });
    clients.push(client);
    assert.deepEqual((client.welcome?.["subs"] as Array<{ channel: string }>).map((s) => s.channel), ["news.eu", "news.us"]);
  });

  test("--secret-file (trailing newline ignored); JWT_ISSUER / JWT_AUDIENCE from the environment become iss / aud", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "herald-token-"));
    try {
      const file = path.join(dir, "secret");
      writeFileSync(file, `${TEST_SECRET}\n`);
      const out = await mint(["--sub", "bob", "--channels", "news.*", "--secret-file", file], {
        JWT_ISSUER: "https://auth.example.com",
        JWT_AUDIENCE: "herald",
      });
      assert.equal(out.code, 0, out.stderr);
      const claims = decodeJwt(out.stdout.trim());
      assert.equal(claims.iss, "https://auth.example.com");
      assert.equal(claims.aud, "herald");
      // Signed with the file's secret (without the newline): the gateway (no iss/aud configured) accepts it.
      const client = await connect(gateway.wsUrl, { token: out.stdout.trim() });
      clients.push(client);
      assert.equal((await client.request({ type: "subscribe", channel: "news.eu", id: 1 })).type, "subscribed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const bad: Array<[string, string[], Record<string, string>, RegExp]> = [
    ["no secret", ["--sub", "a", "--channels", "news"], {}, /^token: no secret: set JWT_SECRET .*--secret-file/],
    ["short secret", ["--sub", "a", "--channels", "news"], { JWT_SECRET: "too-short" }, /^token: JWT_SECRET: must be at least 32 bytes/],
    ["'>' not last", ["--sub", "a", "--channels", "news.>.eu"], { JWT_SECRET: TEST_SECRET }, /^token: --channels: "news\.>\.eu": ">" may only be the last token/],
    ["wildcard inside a token", ["--sub", "a", "--publish", "chat*"], { JWT_SECRET: TEST_SECRET }, /^token: --publish: "chat\*": wildcards must be a whole token/],
    ["bad characters", ["--sub", "a", "--channels", "news/eu"], { JWT_SECRET: TEST_SECRET }, /^token: --channels: "news\/eu": pattern tokens may only contain/],
    ["empty token", ["--sub", "a", "--channels", "news..eu"], { JWT_SECRET: TEST_SECRET }, /^token: --channels: "news\.\.eu": pattern has an empty token/],
    ["no --sub", ["--channels", "news"], { JWT_SECRET: TEST_SECRET }, /^token: --sub is required/],
    ["bad --ttl", ["--sub", "a", "--channels", "news", "--ttl", "soon"], { JWT_SECRET: TEST_SECRET }, /^token: --ttl: "soon": expected a positive duration/],
    ["wildcard in --subs", ["--sub", "a", "--channels", "news.>", "--subs", "news.*"], { JWT_SECRET: TEST_SECRET }, /^token: --subs: "news\.\*": wildcards are not allowed/],
    ["unknown option", ["--sub", "a", "--chanels", "news"], { JWT_SECRET: TEST_SECRET }, /^token: Unknown option '--chanels'/],
  ];
  for (const [what, args, env, message] of bad) {
    test(`bad input (${what}): exit 2, a clear message on stderr, nothing on stdout`, async () => {
      const out = await mint(args, env);
      assert.equal(out.code, 2, out.stdout + out.stderr);
      assert.match(out.stderr, message);
      assert.equal(out.stdout, "");
      if (env["JWT_SECRET"]) assert.ok(!out.stderr.includes(env["JWT_SECRET"]), "the secret is never printed");
    });
  }
});
