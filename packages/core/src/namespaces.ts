/**
 * Namespaces: options per family of channels, keyed by a channel's first
 * token (`chat.42` and `chat` are in `chat`). Read once from NAMESPACES (JSON)
 * or NAMESPACES_FILE (JSON or YAML), validated, and shared by the gateway and
 * the publisher, which read the same setting. The `""` entry holds the options
 * of every channel in no listed namespace; without it such channels are
 * invalid. With neither setting every channel gets the global HISTORY*
 * settings, exactly as before namespaces existed.
 *
 * Errors are ConfigErrors naming the variable, the namespace and the option.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { Env } from "./env.js";
import { ConfigError } from "./errors.js";
import type { HistoryConfig } from "./history-config.js";

export interface NamespaceOptions {
  /** The namespace's name; "" for the default entry (and for every channel when namespaces are not configured). */
  name: string;
  /** Positions, recovery and history for its channels. */
  history: boolean;
  historyMaxAgeSeconds: number;
  historyMaxPerChannel: number;
  presence: boolean;
  /** Join and leave frames to the channel's subscribers. */
  joinLeave: boolean;
  /** false: client `publish` frames are `forbidden`, whatever the token grants. */
  clientPublish: boolean;
}

/** Most namespaces one configuration may list (each may become a JetStream stream). */
export const MAX_NAMESPACES = 256;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

type Reader = (value: unknown, fail: (message: string) => never) => boolean | number;

const boolean: Reader = (v, fail) => (typeof v === "boolean" ? v : fail(`must be true or false, got ${JSON.stringify(v)}`));
const integer =
  (min: number, max: number): Reader =>
  (v, fail) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? v : fail(`must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);

/** The options a namespace may set, by their name in the file, with the field each one fills. */
const OPTIONS: Record<string, { field: keyof Omit<NamespaceOptions, "name">; read: Reader }> = {
  history: { field: "history", read: boolean },
  history_max_age_seconds: { field: "historyMaxAgeSeconds", read: integer(1, 30 * 24 * 3600) },
  history_max_per_channel: { field: "historyMaxPerChannel", read: integer(1, 1_000_000) },
  presence: { field: "presence", read: boolean },
  join_leave: { field: "joinLeave", read: boolean },
  client_publish: { field: "clientPublish", read: boolean },
};

export class Namespaces {
  private constructor(
    /** false: neither NAMESPACES nor NAMESPACES_FILE was set. */
    readonly configured: boolean,
    private readonly byName: ReadonlyMap<string, NamespaceOptions>,
    private readonly fallback: NamespaceOptions | undefined,
  ) {}

  /** Every channel in one implicit namespace with the global settings (neither variable set). */
  static unconfigured(history: HistoryConfig): Namespaces {
    return new Namespaces(false, new Map(), defaults("", history));
  }

  /** From the parsed document; `variable` names the setting in errors, `source` (a file) prefixes their message. */
  static fromDocument(doc: unknown, variable: string, history: HistoryConfig, source?: string): Namespaces {
    const at = source === undefined ? "" : `${JSON.stringify(source)}: `;
    const fail = (message: string): never => {
      throw new ConfigError(variable, at + message);
    };
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      fail('must be an object of namespaces, e.g. {"chat": {"history": true}, "": {}}');
    }
    const entries = Object.entries(doc as Record<string, unknown>);
    if (entries.length > MAX_NAMESPACES) fail(`lists ${entries.length} namespaces; at most ${MAX_NAMESPACES}`);
    const byName = new Map<string, NamespaceOptions>();
    let fallback: NamespaceOptions | undefined;
    for (const [name, body] of entries) {
      const where = name === "" ? 'the default namespace ""' : `namespace "${name}"`;
      if (name !== "" && !NAME.test(name)) {
        fail(`${JSON.stringify(name)} is not a namespace name: 1-64 characters of [A-Za-z0-9_-] (a channel's first token), or "" for the default`);
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) fail(`${where} must be an object of options, got ${JSON.stringify(body)}`);
      const options = defaults(name, history);
      for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
        const option = OPTIONS[key];
        if (!option) fail(`${where}: unknown option "${key}" (known: ${Object.keys(OPTIONS).join(", ")})`);
        (options as unknown as Record<string, unknown>)[option!.field] = option!.read(value, (message) => fail(`${where}: option "${key}" ${message}`));
      }
      if (options.history && !history.enabled) fail(`${where}: option "history" is true, but HISTORY=false turns history off for the whole server`);
      if (name === "") fallback = options;
      else byName.set(name, options);
    }
    return new Namespaces(true, byName, fallback);
  }

  /** The options of `channel` (a valid channel name), or undefined when it is in no namespace and there is no "" entry. */
  of(channel: string): NamespaceOptions | undefined {
    const dot = channel.indexOf(".");
    return this.byName.get(dot < 0 ? channel : channel.slice(0, dot)) ?? this.fallback;
  }

  /** Why `channel` (a valid channel name) is refused as `invalid_channel`: in no namespace and no "" entry; null when it has one. */
  problem(channel: string): string | null {
    if (this.of(channel)) return null;
    const dot = channel.indexOf(".");
    return `channel ${channel} is in no namespace: the server has no "${dot < 0 ? channel : channel.slice(0, dot)}" and no default ("") namespace`;
  }

  /** The listed namespaces, then the default entry when there is one. */
  get list(): NamespaceOptions[] {
    return [...this.byName.values(), ...(this.fallback ? [this.fallback] : [])];
  }
}

function defaults(name: string, history: HistoryConfig): NamespaceOptions {
  return {
    name,
    history: history.enabled,
    historyMaxAgeSeconds: history.maxAgeSeconds,
    historyMaxPerChannel: history.maxPerChannel,
    presence: false,
    joinLeave: false,
    clientPublish: true,
  };
}

/** NAMESPACES (JSON) or NAMESPACES_FILE (JSON or YAML; YAML is a superset of JSON), never both. */
export function readNamespaces(env: Env, history: HistoryConfig): Namespaces {
  const inline = env["NAMESPACES"]?.trim() || undefined;
  const file = env["NAMESPACES_FILE"]?.trim() || undefined;
  if (inline && file) throw new ConfigError("NAMESPACES_FILE", "set NAMESPACES or NAMESPACES_FILE, not both");
  if (inline) {
    let doc: unknown;
    try {
      doc = JSON.parse(inline);
    } catch (err) {
      throw new ConfigError("NAMESPACES", `is not valid JSON: ${(err as Error).message}`);
    }
    // JSON.parse keeps the last of two equal keys; a namespace listed twice is a mistake.
    try {
      parseYaml(inline, { uniqueKeys: true });
    } catch (err) {
      if (/unique/i.test((err as Error).message)) throw new ConfigError("NAMESPACES", `lists a key twice: ${(err as Error).message.split("\n")[0]}`);
    }
    return Namespaces.fromDocument(doc, "NAMESPACES", history);
  }
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError("NAMESPACES_FILE", `cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let doc: unknown;
    try {
      // uniqueKeys: a namespace listed twice is a mistake, not "the last one wins".
      doc = parseYaml(text, { uniqueKeys: true, prettyErrors: true });
    } catch (err) {
      throw new ConfigError("NAMESPACES_FILE", `${JSON.stringify(file)} is not valid JSON or YAML: ${(err as Error).message.split("\n")[0]}`);
    }
    return Namespaces.fromDocument(doc, "NAMESPACES_FILE", history, file);
  }
  return Namespaces.unconfigured(history);
}
