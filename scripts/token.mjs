#!/usr/bin/env node
/**
 * `npm run -s token -- --sub alice --channels 'news.>' --publish 'chat.*' --ttl 1h`
 *
 * Mints an HS256 client token for a gateway that verifies with JWT_SECRET
 * (the standalone services, Compose, Kubernetes). The secret comes from
 * JWT_SECRET in the environment or from --secret-file; JWT_ISSUER,
 * JWT_AUDIENCE and JWT_ALGORITHMS are honoured like the gateway does, so the
 * token is one that gateway accepts.
 *
 * Only the token goes to stdout (TOKEN=$(npm run -s token -- ...) works);
 * every problem goes to stderr with exit 2 and nothing on stdout.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const USAGE =
  "usage: npm run -s token -- --sub <user> [--channels 'news.>,chat.*'] [--publish 'chat.*,user:*'] [--ttl 1h]\n" +
  "                           [--subs 'news.eu,alerts'] [--jti <token id>]\n" +
  "                           [--secret-file <path>] [--iss <issuer>] [--aud <audience>]\n" +
  "       the secret is JWT_SECRET from the environment unless --secret-file is given";

function fail(message) {
  process.stderr.write(`token: ${message}\n`);
  process.exit(2);
}

let core;
try {
  core = await import("@herald/core");
} catch (err) {
  fail(`cannot load @herald/core (${err.code ?? err.message}); run npm ci && npm run build first`);
}
const { channelProblem, readAuthConfig, ConfigError, processEnv } = core;
const { SignJWT } = await import("jose");

let args;
try {
  args = parseArgs({
    options: {
      sub: { type: "string" },
      channels: { type: "string", multiple: true },
      publish: { type: "string", multiple: true },
      subs: { type: "string", multiple: true },
      jti: { type: "string" },
      ttl: { type: "string", default: "1h" },
      "secret-file": { type: "string" },
      iss: { type: "string" },
      aud: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
} catch (err) {
  fail(`${err.message}\n${USAGE}`);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const sub = args.sub?.trim();
// The gateway refuses a token whose sub is missing, empty or longer than 256 characters.
if (!sub) fail(`--sub is required (the user id)\n${USAGE}`);
if (sub.length > 256) fail("--sub must be at most 256 characters");

const channels = patterns("--channels", args.channels, false);
const publish = patterns("--publish", args.publish, true);
// Channels the gateway subscribes at open: concrete ones, each covered by --channels (the gateway refuses the token otherwise).
const subs = (args.subs ?? []).flatMap((v) => v.split(",")).map((c) => c.trim()).filter((c) => c !== "");
for (const channel of subs) {
  const problem = channelProblem(channel);
  if (problem) fail(`--subs: "${channel}": ${problem}`);
}
const jti = args.jti?.trim();
if (jti !== undefined && (jti === "" || jti.length > 256)) fail("--jti must be 1 to 256 characters");
if (channels.length === 0 && publish.length === 0) fail("give --channels and/or --publish: a token without either grants nothing");

const ttlSeconds = parseTtl(args.ttl);
const auth = authSettings();
const alg = auth.algorithms.find((a) => a.startsWith("HS"));

const now = Math.floor(Date.now() / 1000);
const jwt = new SignJWT({
  ...(channels.length ? { channels } : {}),
  ...(publish.length ? { publish } : {}),
  ...(subs.length ? { subs } : {}),
  ...(jti ? { jti } : {}),
})
  .setProtectedHeader({ alg, typ: "JWT" })
  .setSubject(sub)
  .setIssuedAt(now)
  .setExpirationTime(now + ttlSeconds);
if (auth.issuer) jwt.setIssuer(auth.issuer);
if (auth.audience) jwt.setAudience(auth.audience);
process.stdout.write(`${await jwt.sign(new TextEncoder().encode(auth.secret))}\n`);

/**
 * Comma-separated (and repeatable) patterns, checked with the gateway's own
 * channel rules: every token is a channel token, `*` (one token) or, last
 * only, `>` (the rest). A pattern the gateway could never match is a typo
 * worth stopping for, not a silent no-op in somebody's token.
 */
function patterns(option, values, allowUserGrants) {
  const list = (values ?? []).flatMap((v) => v.split(",")).map((p) => p.trim()).filter((p) => p !== "");
  for (const pattern of list) {
    if (allowUserGrants && pattern.startsWith("user:")) {
      // The publisher's user route: "user:*" or "user:<sub>".
      const user = pattern.slice("user:".length);
      if (user === "" || user.length > 256 || /\s/.test(user)) fail(`${option}: "${pattern}": expected user:* or user:<sub>`);
      continue;
    }
    const problem = patternProblem(pattern);
    if (problem) fail(`${option}: "${pattern}": ${problem}`);
  }
  return list;
}

function patternProblem(pattern) {
  const tokens = pattern.split(".");
  const last = tokens.length - 1;
  for (const [i, token] of tokens.entries()) {
    if (token === ">" && i !== last) return '">" may only be the last token';
    if (token !== "*" && token !== ">" && /[*>]/.test(token)) return `wildcards must be a whole token ("${token}")`;
  }
  // Wildcard tokens stand for one channel token; the rest is a channel name.
  const concrete = tokens.map((t) => (t === "*" || t === ">" ? "x" : t)).join(".");
  return channelProblem(concrete)?.replace(/^channel/, "pattern") ?? null;
}

/** 90, 90s, 15m, 1h, 7d. */
function parseTtl(text) {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2]] : NaN;
  if (!Number.isSafeInteger(seconds) || seconds <= 0) fail(`--ttl: "${text}": expected a positive duration like 90s, 15m, 1h or 7d`);
  if (seconds > 366 * 86400) fail(`--ttl: "${text}": at most 366d (a token cannot be revoked before it expires)`);
  return seconds;
}

/**
 * JWT_SECRET (or --secret-file), JWT_ISSUER, JWT_AUDIENCE and the HMAC part
 * of JWT_ALGORITHMS, validated by the same reader the gateway uses, so a
 * secret it would refuse (say, too short) is refused here with its words.
 */
function authSettings() {
  const env = processEnv();
  let secret = env.JWT_SECRET;
  if (args["secret-file"] !== undefined) {
    try {
      // Files written by `echo` or editors end with a newline that is not part of the secret.
      secret = readFileSync(args["secret-file"], "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      fail(`--secret-file: cannot read ${args["secret-file"]} (${err.code ?? err.message})`);
    }
  }
  if (!secret) fail("no secret: set JWT_SECRET (the gateway's HS256 key) or pass --secret-file <path>");
  const algorithms = (env.JWT_ALGORITHMS ?? "").split(",").map((a) => a.trim()).filter((a) => a !== "");
  const hmac = algorithms.filter((a) => a.startsWith("HS"));
  if (algorithms.length > 0 && hmac.length === 0) {
    fail(`JWT_ALGORITHMS is "${env.JWT_ALGORITHMS}": that gateway accepts no HMAC token, so a JWT_SECRET token would be refused`);
  }
  try {
    return readAuthConfig({
      JWT_SECRET: secret,
      JWT_ALGORITHMS: hmac.join(","),
      JWT_ISSUER: args.iss ?? env.JWT_ISSUER,
      JWT_AUDIENCE: args.aud ?? env.JWT_AUDIENCE,
    });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}
