/**
 * The demo page in a real browser: headless Chromium (Debian's `chromium`,
 * driven by playwright-core) opens the page served by scripts/demo-server.mjs,
 * the page connects to a gateway with the browser SDK (token in
 * Sec-WebSocket-Protocol, Origin checked), a message published through the
 * publisher's HTTP API appears on the page, and so does one published from the
 * page's own publish box. A screenshot is saved to test-artifacts/.
 *
 * Processes: nats-server, gateway, publisher (so delivery crosses processes
 * exactly as in production), and the demo server in this process.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { startNats, type NatsServer } from "./helpers/nats.js";
import { freePort } from "./helpers/ports.js";
import {
  GATEWAY_MAIN,
  PUBLISHER_MAIN,
  REPO_ROOT,
  missingBuild,
  startGateway,
  startPublisher,
  uniqueName,
  type ServiceProcess,
} from "./helpers/procs.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";

type Playwright = typeof import("playwright-core");

const CHROMIUM_CANDIDATES = [process.env["CHROMIUM_PATH"], "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
const chromiumPath = CHROMIUM_CANDIDATES.find((p): p is string => typeof p === "string" && p !== "" && existsSync(p));
const SDK_BUILD = path.join(REPO_ROOT, "packages/client/dist/index.js");

let playwright: Playwright | undefined;
try {
  playwright = await import("playwright-core");
} catch {
  playwright = undefined;
}

const skip =
  missingBuild(GATEWAY_MAIN) ??
  missingBuild(PUBLISHER_MAIN) ??
  missingBuild(SDK_BUILD) ??
  (chromiumPath ? undefined : "no Chromium found (apt-get install -y chromium, or set CHROMIUM_PATH)") ??
  (playwright ? undefined : "playwright-core is not installed (npm ci)");

const ARTIFACTS = path.join(REPO_ROOT, "test-artifacts");

describe("demo page in headless Chromium", { skip }, () => {
  const procs: ServiceProcess[] = [];
  let nats: NatsServer | undefined;
  let demo: { port: number; close(): Promise<void> } | undefined;
  let browser: import("playwright-core").BrowserContext | undefined;
  let profileDir: string | undefined;

  after(async () => {
    await browser?.close().catch(() => undefined);
    await demo?.close();
    await Promise.all(procs.map((p) => p.stop(5_000)));
    await nats?.stop();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  });

  test("shows the connection state and a message published through the publisher; the publish box works; screenshot saved", async () => {
    nats = await startNats();
    const demoPort = await freePort();
    const origin = `http://127.0.0.1:${demoPort}`;
    const gateway = await startGateway({
      NATS_URL: nats.url,
      NATS_NAME: uniqueName("gw-browser"),
      JWT_SECRET: TEST_SECRET,
      ALLOWED_ORIGINS: origin,
    });
    procs.push(gateway);
    const apiKey = `key-${uniqueName("browser")}`;
    const publisher = await startPublisher({ NATS_URL: nats.url, NATS_NAME: uniqueName("pub-browser"), PUBLISHER_API_KEY: apiKey });
    procs.push(publisher);

    const { startDemoServer } = (await import(path.join(REPO_ROOT, "scripts/demo-server.mjs"))) as {
      startDemoServer(o: { port: number; host?: string; gatewayUrl: string; token: string; publisherUrl?: string }): Promise<{ port: number; close(): Promise<void> }>;
    };
    const token = await hsToken({ sub: "demo-user", channels: [">"], publish: [">"] });
    demo = await startDemoServer({ port: demoPort, host: "127.0.0.1", gatewayUrl: gateway.wsUrl, token, publisherUrl: publisher.url });

    // A fresh profile directory and the flags documented for Debian's chromium.
    profileDir = mkdtempSync(path.join(tmpdir(), "herald-chromium-"));
    browser = await (playwright as Playwright).chromium.launchPersistentContext(profileDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      timeout: 60_000,
      viewport: { width: 1200, height: 760 },
    });
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));
    page.on("console", (msg) => {
      if (msg.type() === "error") pageErrors.push(msg.text());
    });

    await page.goto(`${origin}/`, { waitUntil: "domcontentloaded" });
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 20_000 });
    assert.match((await page.textContent("#who")) ?? "", /demo-user/);
    await page.waitForSelector('#channels li[data-channel="demo"][data-active="true"]', { timeout: 10_000 });

    // 1) Published through the publisher's HTTP API → NATS → gateway → page.
    const text = `hello from the publisher ${uniqueName("m")}`;
    const res = await fetch(`${publisher.url}/v1/channels/demo/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ text }),
    });
    assert.equal(res.status, 202, await res.text());
    await page.waitForSelector(`#messages li[data-channel="demo"] >> text=${text}`, { timeout: 15_000 });

    // 2) Subscribe to another channel and publish from the page itself.
    await page.fill("#subscribe-channel", "chat.room-1");
    await page.click('#subscribe-form button[type="submit"]');
    await page.waitForSelector('#channels li[data-channel="chat.room-1"][data-active="true"]', { timeout: 10_000 });
    const own = `typed in the page ${uniqueName("p")}`;
    await page.fill("#publish-channel", "chat.room-1");
    await page.fill("#publish-data", JSON.stringify({ text: own }));
    await page.click("#publish-button");
    await page.waitForSelector(`#messages li[data-channel="chat.room-1"] >> text=${own}`, { timeout: 15_000 });
    await page.waitForSelector("#publish-status >> text=/^published to chat.room-1/", { timeout: 10_000 });
    assert.equal(await page.textContent("#count"), "2");

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, "browser-demo.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(existsSync(shot));
    assert.deepEqual(pageErrors, [], "no errors in the page console");
  });
});
