/**
 * The only module that imports uWebSockets.js.
 *
 * The npm package we use (an alias of @trufflesuite/uws-js-unofficial) quietly
 * falls back to a slow JavaScript emulation on `ws` when its native addon
 * cannot load. Herald must never run on that fallback, so this loader requires
 * the native binary for this platform and Node ABI directly and throws a
 * clear error when it is missing or does not load.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type * as UwsTypes from "uWebSockets.js";

export type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  WebSocket,
  WebSocketBehavior,
  us_listen_socket,
  us_socket_context_t,
} from "uWebSockets.js";

export class UwsLoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UwsLoadError";
  }
}

function loadNative(): typeof UwsTypes {
  const require = createRequire(import.meta.url);
  const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  let pkgDir: string;
  try {
    pkgDir = dirname(require.resolve("uWebSockets.js/package.json"));
  } catch (err) {
    throw new UwsLoadError("uWebSockets.js is not installed (run npm ci)", { cause: err });
  }
  const path = join(pkgDir, "binaries", binary);
  try {
    const native = require(path) as typeof UwsTypes;
    if (typeof native.App !== "function") throw new Error("binary has no App export");
    return native;
  } catch (err) {
    throw new UwsLoadError(
      `cannot load the native uWebSockets.js build ${binary} (Node ${process.version}, ` +
        `${process.platform}/${process.arch}): ${(err as Error).message}. ` +
        "Herald refuses to run on the slow JavaScript fallback; use Node 20 (ABI 115) on glibc >= 2.27, e.g. Debian bookworm.",
      { cause: err },
    );
  }
}

export const uws = loadNative();

/**
 * Listen option that turns SO_REUSEPORT off. The native module exports it at
 * its top level; the bundled types only describe it as the ListenOptions enum.
 */
export const LISTEN_EXCLUSIVE_PORT: UwsTypes.ListenOptions = (() => {
  const value = (uws as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: UwsTypes.ListenOptions }).LIBUS_LISTEN_EXCLUSIVE_PORT;
  if (value === undefined) throw new UwsLoadError("the native uWebSockets.js build has no LIBUS_LISTEN_EXCLUSIVE_PORT");
  return value;
})();

/**
 * Closes every socket of an app, idle HTTP keep-alive connections included
 * (closing the listen sockets leaves those open). The native build has
 * TemplatedApp.close(); its type definitions do not list it.
 */
export function closeApp(app: UwsTypes.TemplatedApp): void {
  (app as unknown as { close?: () => void }).close?.();
}

/** The uWS compressor of a COMPRESSION mode (the 4 KB sliding windows: a socket's compressor costs memory). */
export function uwsCompression(mode: "off" | "shared" | "dedicated"): number {
  return mode === "off" ? uws.DISABLED : mode === "shared" ? uws.SHARED_COMPRESSOR : uws.DEDICATED_COMPRESSOR_4KB;
}
