/**
 * Which history window keeps which channel: the JetStream streams (or the
 * embedded broker's stores) that HISTORY* and the namespaces' history
 * options call for. Read once with the rest of the NATS section, so
 * gateways and publishers create and read the same streams.
 *
 * JetStream refuses two streams whose subjects overlap, and NATS subjects
 * cannot say "every channel except these", so there are two layouts:
 * - one catch-all stream (`HISTORY_STREAM`, every channel subject) when
 *   namespaces are not configured, or when the default namespace `""` keeps
 *   history; every namespace with history then shares its window;
 * - otherwise one stream per namespace with history,
 *   `<HISTORY_STREAM>_<namespace>`, capturing that namespace's channels with
 *   its own age and count limits.
 */
import { ConfigError } from "./errors.js";
import type { HistoryConfig } from "./history-config.js";
import type { Namespaces } from "./namespaces.js";

export interface HistoryWindow {
  /** JetStream stream name (the embedded broker keeps one store per window too). */
  stream: string;
  /** The namespace whose channels it keeps; null for the catch-all window of every channel. */
  namespace: string | null;
  maxAgeSeconds: number;
  maxPerChannel: number;
}

export class HistoryWindows {
  private constructor(
    /** Every window to create, catch-all first. */
    readonly list: readonly HistoryWindow[],
    /** JetStream replicas of every stream. */
    readonly replicas: number,
    private readonly namespaces: Namespaces | undefined,
    private readonly catchAll: HistoryWindow | undefined,
    private readonly byNamespace: ReadonlyMap<string, HistoryWindow>,
  ) {}

  /** One catch-all window with the global settings (none when HISTORY=false): what namespaces left unset means. */
  static single(history: HistoryConfig): HistoryWindows {
    const all = history.enabled ? catchAllOf(history.stream, history.maxAgeSeconds, history.maxPerChannel) : undefined;
    return new HistoryWindows(all ? [all] : [], history.replicas, undefined, all, new Map());
  }

  /** The windows `namespaces` call for; `variable` (NAMESPACES or NAMESPACES_FILE) names the setting in errors. */
  static of(namespaces: Namespaces, history: HistoryConfig, variable: string): HistoryWindows {
    if (!namespaces.configured || !history.enabled) return HistoryWindows.single(history);
    const withHistory = namespaces.list.filter((ns) => ns.history);
    const fallback = withHistory.find((ns) => ns.name === "");
    if (fallback) {
      for (const ns of withHistory) {
        const differs = [
          ns.historyMaxAgeSeconds !== fallback.historyMaxAgeSeconds && `history_max_age_seconds ${ns.historyMaxAgeSeconds} (the default's is ${fallback.historyMaxAgeSeconds})`,
          ns.historyMaxPerChannel !== fallback.historyMaxPerChannel && `history_max_per_channel ${ns.historyMaxPerChannel} (the default's is ${fallback.historyMaxPerChannel})`,
        ].filter(Boolean);
        if (differs.length > 0) {
          throw new ConfigError(
            variable,
            `namespace "${ns.name}": ${differs.join(", ")}: while the default namespace "" keeps history, one stream holds every channel and every namespace with history shares its window (JetStream streams cannot overlap); set "history": false on "" (or drop "") to give each namespace its own stream`,
          );
        }
      }
      const all = catchAllOf(history.stream, fallback.historyMaxAgeSeconds, fallback.historyMaxPerChannel);
      return new HistoryWindows([all], history.replicas, namespaces, all, new Map());
    }
    const byNamespace = new Map<string, HistoryWindow>();
    for (const ns of withHistory) {
      byNamespace.set(ns.name, {
        stream: `${history.stream}_${ns.name}`,
        namespace: ns.name,
        maxAgeSeconds: ns.historyMaxAgeSeconds,
        maxPerChannel: ns.historyMaxPerChannel,
      });
    }
    return new HistoryWindows([...byNamespace.values()], history.replicas, namespaces, undefined, byNamespace);
  }

  /** True when at least one window exists. */
  get enabled(): boolean {
    return this.list.length > 0;
  }

  /**
   * The window that serves `channel`'s positions, recovery and history, or
   * undefined when its namespace has history off (or it is in no namespace).
   */
  of(channel: string): HistoryWindow | undefined {
    if (!this.namespaces) return this.catchAll;
    const ns = this.namespaces.of(channel);
    if (!ns?.history) return undefined;
    return this.catchAll ?? this.byNamespace.get(ns.name);
  }

  /**
   * The window whose stream captures `channel`'s messages, served or not: the
   * catch-all stream also stores channels of namespaces with history off
   * (they are published with a JetStream acknowledgement, and never read).
   */
  storing(channel: string): HistoryWindow | undefined {
    return this.catchAll ?? this.of(channel);
  }
}

function catchAllOf(stream: string, maxAgeSeconds: number, maxPerChannel: number): HistoryWindow {
  return { stream, namespace: null, maxAgeSeconds, maxPerChannel };
}
