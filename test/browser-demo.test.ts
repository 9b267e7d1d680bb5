/**
 * The demo page in a real browser: headless Chromium (Debian's `chromium`,
 * driven by playwright-core) opens the page served by scripts/demo-server.mjs,
 * the page connects to a gateway with the browser SDK (token in
 * Sec-WebSocket-Protocol, Origin checked), a message published through the
 * publisher's HTTP API appears on the page, and so does one published from the
 * page's own publish box. A screenshot is saved to test-artifacts/.
 *
 * Presence (issue 12): two pages with different users (two demo servers,
 * one token each) on a channel of a presence + join_leave namespace each
 * list the other, and see it go on unsubscribe and on disconnect, from the
 * join/leave frames (the frames the pages send show no second page load); a
 * channel of a namespace without presence shows a muted note. Above 1000
 * members (1001 connections from this process) the page shows counts only,
 * refreshed by presence_stats, and the list again once the channel shrinks.
 *
 * Processes: nats-server, gateway, publisher (so delivery crosses processes
 * exactly as in production), and the demo servers in this process.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
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
import { browserMissing, chromiumPath, playwright, type Playwright } from "./helpers/chromium.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { closeAll, connect, type Client } from "./helpers/ws.js";

const SDK_BUILD = path.join(REPO_ROOT, "packages/client/dist/index.js");
const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN) ?? missingBuild(SDK_BUILD) ?? browserMissing;

const ARTIFACTS = path.join(REPO_ROOT, "test-artifacts");
/** Presence with join/leave in `room` (as `npm start` has it), presence alone in `big`, nothing in the rest. */
const NAMESPACES = JSON.stringify({ room: { presence: true, join_leave: true }, big: { presence: true }, "": {} });
/** Members of big.hall beside the page: more than the 1000 above which no join/leave frames are sent. */
const CROWD = 1001;

type DemoServer = { port: number; close(): Promise<void> };
type StartDemoServer = (o: { port: number; host?: string; gatewayUrl: string; token: string; publisherUrl?: string; channels?: string[] }) => Promise<DemoServer>;

describe("demo page in headless Chromium", { skip }, () => {
  const procs: ServiceProcess[] = [];
  let nats: NatsServer | undefined;
  const demos: DemoServer[] = [];
  let browser: import("playwright-core").BrowserContext | undefined;
  let profileDir: string | undefined;
  let gateway: ServiceProcess;
  let publisher: ServiceProcess;
  const crowd: Client[] = [];
  let apiKey: string;
  /** demo-user (info.name "Ann"), the page's default channels. */
  let originA: string;
  /** bob (info.name "Bob"), starting on room.lobby. */
  let originB: string;

  before(async () => {
    nats = await startNats();
    const [portA, portB] = [await freePort(), await freePort()];
    originA = `http://127.0.0.1:${portA}`;
    originB = `http://127.0.0.1:${portB}`;
    gateway = await startGateway({
      NATS_URL: nats.url,
      NATS_NAME: uniqueName("gw-browser"),
      JWT_SECRET: TEST_SECRET,
      ALLOWED_ORIGINS: `${originA},${originB}`,
      NAMESPACES,
      // The crowd of the last test: one sub, one address.
      MAX_CONNECTIONS_PER_IP: "0",
      MAX_CONNECTIONS_PER_USER: "0",
    });
    procs.push(gateway);
    apiKey = `key-${uniqueName("browser")}`;
    publisher = await startPublisher({ NATS_URL: nats.url, NATS_NAME: uniqueName("pub-browser"), PUBLISHER_API_KEY: apiKey, NAMESPACES });
    procs.push(publisher);

    const { startDemoServer } = (await import(path.join(REPO_ROOT, "scripts/demo-server.mjs"))) as { startDemoServer: StartDemoServer };
    const tokenA = await hsToken({ sub: "demo-user", channels: [">"], publish: [">"], info: { name: "Ann" } });
    const tokenB = await hsToken({ sub: "bob", channels: [">"], publish: [">"], info: { name: "Bob" } });
    demos.push(await startDemoServer({ port: portA, host: "127.0.0.1", gatewayUrl: gateway.wsUrl, token: tokenA, publisherUrl: publisher.url }));
    demos.push(await startDemoServer({ port: portB, host: "127.0.0.1", gatewayUrl: gateway.wsUrl, token: tokenB, channels: ["room.lobby"] }));

    // A fresh profile directory and the flags documented for Debian's chromium.
    profileDir = mkdtempSync(path.join(tmpdir(), "herald-chromium-"));
    browser = await (playwright as Playwright).chromium.launchPersistentContext(profileDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      timeout: 60_000,
      viewport: { width: 1200, height: 760 },
    });
  });

  after(async () => {
    await closeAll(crowd);
    await browser?.close().catch(() => undefined);
    await Promise.all(demos.map((d) => d.close()));
    await Promise.all(procs.map((p) => p.stop(5_000)));
    await nats?.stop();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  });

  /** A new page at `origin`, collecting console errors and the types of the frames it sends. */
  async function openPage(origin: string) {
    const page = await browser!.newPage();
    const errors: string[] = [];
    const sent: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    page.on("console", (msg) => {
      if (msg.type() === "error") errors.push(msg.text());
    });
    page.on("websocket", (ws) =>
      ws.on("framesent", ({ payload }) => {
        try {
          sent.push(String((JSON.parse(String(payload)) as { type?: unknown }).type));
        } catch {
          sent.push("?");
        }
      }),
    );
    await page.goto(`${origin}/`, { waitUntil: "domcontentloaded" });
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 20_000 });
    return { page, errors, sent };
  }

  test("shows the connection state and a message published through the publisher; the publish box works; screenshot saved", async () => {
    const { page, errors: pageErrors } = await openPage(originA);
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
    await page.close();
  });

  test("presence: two pages on room.lobby list each other, live from join/leave, and see the other go on unsubscribe and on disconnect; no presence in the default namespace is a muted note", async () => {
    const LOBBY = 'section.presence[data-channel="room.lobby"]';
    const member = (sub: string) => `${LOBBY}[data-mode="live"] li[data-sub="${sub}"]`;
    const counts = async (page: import("playwright-core").Page) => (await page.textContent(`${LOBBY} .presence-counts`))?.trim();

    const a = await openPage(originA);
    // The default namespace has no presence: a note, not an error.
    await a.page.waitForSelector('section.presence[data-channel="demo"][data-mode="off"]', { timeout: 10_000 });
    assert.equal((await a.page.textContent('section.presence[data-channel="demo"] .presence-note'))?.trim(), "presence is off for this namespace");
    assert.equal(await a.page.isVisible('section.presence[data-channel="demo"] ul.members'), false);

    // A joins room.lobby through the subscribe box and finds itself alone.
    await a.page.fill("#subscribe-channel", "room.lobby");
    await a.page.click('#subscribe-form button[type="submit"]');
    await a.page.waitForSelector(member("demo-user"), { timeout: 10_000 });
    assert.match((await a.page.textContent(member("demo-user"))) ?? "", /^Ann\s*demo-user\s*\(you\)$/);
    assert.equal(await counts(a.page), "1 client · 1 user");

    // B (configured to start on room.lobby) loads both; A sees B arrive.
    const b = await openPage(originB);
    await b.page.waitForSelector(member("demo-user"), { timeout: 10_000 });
    await b.page.waitForSelector(member("bob"), { timeout: 10_000 });
    assert.match((await b.page.textContent(member("demo-user"))) ?? "", /^Ann\s*demo-user$/);
    await a.page.waitForSelector(member("bob"), { timeout: 10_000 });
    assert.match((await a.page.textContent(member("bob"))) ?? "", /^Bob\s*bob$/);
    assert.equal(await counts(a.page), "2 clients · 2 users");
    assert.equal(await counts(b.page), "2 clients · 2 users");
    assert.equal(await a.page.getAttribute(`${LOBBY} ul.members`, "aria-label"), "Members of room.lobby");

    // B unsubscribes: A sees it go.
    await b.page.click('#channels button[aria-label="Unsubscribe from room.lobby"]');
    await a.page.waitForSelector(member("bob"), { state: "detached", timeout: 10_000 });
    assert.equal(await counts(a.page), "1 client · 1 user");

    // B comes back: each lists the other again.
    await b.page.fill("#subscribe-channel", "room.lobby");
    await b.page.click('#subscribe-form button[type="submit"]');
    await a.page.waitForSelector(member("bob"), { timeout: 10_000 });
    await b.page.waitForSelector(member("demo-user"), { timeout: 10_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await b.page.screenshot({ path: path.join(ARTIFACTS, "browser-demo-presence.png"), fullPage: true });

    // A disconnects (its connection closes): B sees it go.
    await a.page.click("#toggle");
    await a.page.waitForSelector('#state[data-state="closed"]', { timeout: 10_000 });
    await b.page.waitForSelector(member("demo-user"), { state: "detached", timeout: 10_000 });
    assert.equal(await counts(b.page), "1 client · 1 user");

    // Every change above reached the lists as join/leave frames: A loaded the
    // member list once (one page request), B once per subscription.
    const pageLoads = (sent: string[]) => sent.filter((t) => t === "presence").length;
    assert.equal(pageLoads(a.sent), 2, `A's presence requests (demo, refused, and room.lobby once): ${a.sent.join(",")}`);
    assert.equal(pageLoads(b.sent), 2, `B's presence requests (room.lobby, twice): ${b.sent.join(",")}`);

    assert.deepEqual(a.errors, [], "no errors in page A's console");
    assert.deepEqual(b.errors, [], "no errors in page B's console");
    await Promise.all([a.page.close(), b.page.close()]);
  });

  test("presence above the join/leave limit: counts only, refreshed by presence_stats; the member list again once the channel is small", async () => {
    const HALL = 'section.presence[data-channel="big.hall"]';
    const token = await hsToken({ sub: "crowd", channels: ["big.>"] });
    for (let i = 0; i < CROWD; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, CROWD - i) }, () => connect(gateway.wsUrl, { token })),
      );
      crowd.push(...batch);
      await Promise.all(batch.map((c, j) => c.request({ type: "subscribe", channel: "big.hall", id: j + 1 })));
    }

    const a = await openPage(originA);
    await a.page.fill("#subscribe-channel", "big.hall");
    await a.page.click('#subscribe-form button[type="submit"]');
    await a.page.waitForSelector(`${HALL}[data-mode="large"]`, { timeout: 10_000 });
    assert.equal((await a.page.textContent(`${HALL} .presence-counts`))?.trim(), `${CROWD + 1} clients · 2 users`);
    assert.match((await a.page.textContent(`${HALL} .presence-note`)) ?? "", /More than 1000 members: no live joins and leaves here, the counts refresh every 5 s/);
    assert.equal(await a.page.isVisible(`${HALL} ul.members`), false);

    // One leaves (1001 left): the next presence_stats poll shows it.
    await crowd.shift()!.close();
    await a.page.waitForSelector(`${HALL} .presence-counts >> text="${CROWD} clients · 2 users"`, { timeout: 15_000 });
    assert.equal(await a.page.getAttribute(HALL, "data-mode"), "large");

    // Down to 1000 (with the page): the list is loaded again.
    await crowd.shift()!.close();
    await a.page.waitForSelector(`${HALL}[data-mode="live"] li[data-sub="demo-user"]`, { timeout: 15_000 });
    assert.equal((await a.page.textContent(`${HALL} .presence-counts`))?.trim(), "1000 clients · 2 users");
    assert.match((await a.page.textContent(`${HALL} li[data-sub="crowd"]`)) ?? "", /^crowd\s*×999$/);
    assert.ok(a.sent.includes("presence_stats"), "the page polled presence_stats");
    assert.deepEqual(a.errors, [], "no errors in the page console");
    await a.page.close();
  });
});
