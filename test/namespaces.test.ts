/**
 * Namespaces (packages/core/src/namespaces.ts): NAMESPACES (JSON) or
 * NAMESPACES_FILE (JSON or YAML) read once, every error naming the variable,
 * the namespace and the option; unset, every channel keeps the global
 * HISTORY* settings.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ConfigError, MAX_NAMESPACES, readHistoryConfig, readNamespaces, type Env } from "@herald/core";

const dir = mkdtempSync(join(tmpdir(), "herald-namespaces-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const read = (env: Env) => readNamespaces(env, readHistoryConfig(env));

/** The ConfigError `env` gets, checked to name `variable` and to match every pattern. */
function refused(env: Env, variable: string, ...patterns: RegExp[]): void {
  assert.throws(
    () => read(env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
      assert.equal(err.variable, variable);
      for (const p of patterns) assert.match(err.message, p);
      return true;
    },
  );
}

const DESIGN_EXAMPLE = {
  chat: { history: true, history_max_age_seconds: 86400, history_max_per_channel: 10000, presence: true, join_leave: true, client_publish: true },
  news: { history: true, client_publish: false },
  "": { history: false },
};

describe("namespaces", () => {
  test("unset: one implicit namespace with the global history settings", () => {
    const ns = read({ HISTORY_MAX_AGE_SECONDS: "60", HISTORY_MAX_PER_CHANNEL: "5" });
    assert.equal(ns.configured, false);
    assert.deepEqual(ns.of("any.channel"), {
      name: "",
      history: true,
      historyMaxAgeSeconds: 60,
      historyMaxPerChannel: 5,
      presence: false,
      joinLeave: false,
      clientPublish: true,
    });
    assert.equal(read({ HISTORY: "false" }).of("x")?.history, false);
  });

  test("the design's example: a channel's first token picks its namespace, \"\" takes the rest", () => {
    const ns = read({ NAMESPACES: JSON.stringify(DESIGN_EXAMPLE), HISTORY_MAX_AGE_SECONDS: "300" });
    assert.equal(ns.configured, true);
    const chat = ns.of("chat.42")!;
    assert.equal(chat.name, "chat");
    assert.equal(chat.historyMaxAgeSeconds, 86400);
    assert.equal(chat.historyMaxPerChannel, 10000);
    assert.equal(chat.presence && chat.joinLeave && chat.clientPublish, true);
    assert.equal(ns.of("chat")?.name, "chat", "a one-token channel is in the namespace of that token");
    assert.equal(ns.of("chatter.1")?.name, "", "a longer first token is another namespace");
    const news = ns.of("news.eu.sport")!;
    assert.equal(news.clientPublish, false);
    assert.equal(news.historyMaxAgeSeconds, 300, "unset options take the global settings");
    assert.equal(ns.of("other.x")?.history, false);
    assert.deepEqual(ns.list.map((n) => n.name), ["chat", "news", ""]);
  });

  test('without a "" entry, a channel in no namespace has none', () => {
    const ns = read({ NAMESPACES: '{"chat": {}}' });
    assert.equal(ns.of("chat.1")?.name, "chat");
    assert.equal(ns.of("other.1"), undefined);
  });

  test("NAMESPACES_FILE takes YAML (and JSON)", () => {
    const yaml = file("ns.yaml", 'chat:\n  history: true\n  history_max_age_seconds: 3600\n  client_publish: false\n"":\n  history: false\n');
    const ns = read({ NAMESPACES_FILE: yaml });
    assert.equal(ns.of("chat.1")?.historyMaxAgeSeconds, 3600);
    assert.equal(ns.of("chat.1")?.clientPublish, false);
    assert.equal(ns.of("x")?.history, false);
    const json = file("ns.json", JSON.stringify(DESIGN_EXAMPLE));
    assert.equal(read({ NAMESPACES_FILE: json }).of("news.1")?.clientPublish, false);
  });

  test("bad documents are refused, naming the variable, the namespace and the option", () => {
    refused({ NAMESPACES: "{chat:" }, "NAMESPACES", /is not valid JSON/);
    refused({ NAMESPACES: "[1]" }, "NAMESPACES", /must be an object of namespaces/);
    refused({ NAMESPACES: '{"chat": {}, "chat": {"history": false}}' }, "NAMESPACES", /twice/);
    refused({ NAMESPACES: '{"chat.room": {}}' }, "NAMESPACES", /"chat\.room" is not a namespace name/);
    refused({ NAMESPACES: '{"chat": true}' }, "NAMESPACES", /namespace "chat" must be an object of options, got true/);
    refused({ NAMESPACES: '{"chat": {"histroy": true}}' }, "NAMESPACES", /namespace "chat": unknown option "histroy"/, /known: history, /);
    refused({ NAMESPACES: '{"chat": {"history": "yes"}}' }, "NAMESPACES", /namespace "chat": option "history" must be true or false, got "yes"/);
    refused({ NAMESPACES: '{"": {"history_max_age_seconds": 0}}' }, "NAMESPACES", /the default namespace "": option "history_max_age_seconds" must be an integer from 1 to/);
    refused({ NAMESPACES: '{"a": {"history_max_per_channel": 1.5}}' }, "NAMESPACES", /option "history_max_per_channel" must be an integer/);
    refused({ NAMESPACES: '{"chat": {"history": true}}', HISTORY: "false" }, "NAMESPACES", /namespace "chat": option "history" is true, but HISTORY=false/);
    const many = Object.fromEntries(Array.from({ length: MAX_NAMESPACES + 1 }, (_, i) => [`n${i}`, {}]));
    refused({ NAMESPACES: JSON.stringify(many) }, "NAMESPACES", new RegExp(`at most ${MAX_NAMESPACES}`));
  });

  test("bad files and settings are refused, naming NAMESPACES_FILE and the file", () => {
    const missing = join(dir, "missing.yaml");
    refused({ NAMESPACES_FILE: missing }, "NAMESPACES_FILE", /cannot read/, /ENOENT/);
    refused({ NAMESPACES_FILE: file("dup.yaml", "chat: {}\nchat: {}\n") }, "NAMESPACES_FILE", /is not valid JSON or YAML/);
    refused({ NAMESPACES_FILE: file("bad.yaml", "chat:\n  history: maybe\n") }, "NAMESPACES_FILE", /bad\.yaml/, /namespace "chat": option "history" must be true or false, got "maybe"/);
    refused({ NAMESPACES: "{}", NAMESPACES_FILE: file("x.json", "{}") }, "NAMESPACES_FILE", /not both/);
  });
});
