/**
 * Headless Chromium for the browser tests: Debian's `chromium` (or
 * CHROMIUM_PATH) driven by playwright-core, and why a test is skipped when
 * either is missing.
 */
import { existsSync } from "node:fs";

export type Playwright = typeof import("playwright-core");

const CANDIDATES = [process.env["CHROMIUM_PATH"], "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
export const chromiumPath = CANDIDATES.find((p): p is string => typeof p === "string" && p !== "" && existsSync(p));
export const playwright: Playwright | undefined = await import("playwright-core").catch(() => undefined);
/** The reason to skip a browser test, or undefined when it can run. */
export const browserMissing: string | undefined =
  (chromiumPath ? undefined : "no Chromium found (apt-get install -y chromium, or set CHROMIUM_PATH)") ?? (playwright ? undefined : "playwright-core is not installed (npm ci)");
