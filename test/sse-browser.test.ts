/**
 * A browser's own EventSource on GET /sse (headless Chromium): its gateway
 * drains (a final close event 1001), the browser reconnects by itself with
 * Last-Event-ID through a load balancer to another gateway process, and the
 * message published in between arrives once, with nothing lost or repeated.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { browserMissing, chromiumPath, playwright, type Playwright } from "./helpers/chromium.js";
import { hsToken } from "./helpers/tokens.js";
import { TestStack } from "./helpers/stack.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";

type Context = Awaited<ReturnType<Playwright["chromium"]["launchPersistentContext"]>>;
const skip = missingBuild(GATEWAY_MAIN) ?? browserMissing;

const API_KEY = "sse-browser-api-key-0123456789abcd";

interface Got {
  id: string;
  frame: { type: string; channel?: string; code?: number; data?: { k?: string } };
}

describe("SSE in a browser's EventSource", { skip }, () => {
  const stack = new TestStack();
  let gwA: ServiceProcess;
  let gwB: ServiceProcess;
  let publisher: ServiceProcess;
  let proxy: TcpProxy;
  let browser: Context | undefined;
  let profileDir: string | undefined;

  before(async () => {
    const nats = await stack.nats({ jetstream: true });
    const common = { HISTORY_STREAM: "SSE_BROWSER", HISTORY_MAX_PER_CHANNEL: "100" };
    [gwA, gwB, publisher] = await Promise.all([
      stack.gateway(nats, { ...common, DRAIN_SECONDS: "0" }),
      stack.gateway(nats, common),
      stack.publisher(nats, { ...common, PUBLISHER_API_KEY: API_KEY }),
    ]);
    proxy = await startTcpProxy([gwA.port]);
    profileDir = mkdtempSync(path.join(tmpdir(), "herald-sse-chromium-"));
    browser = await playwright!.chromium.launchPersistentContext(profileDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      timeout: 60_000,
    });
  });
  after(async () => {
    await browser?.close();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    await proxy?.close();
    await stack.close();
  });

  const publish = async (k: string) => {
    const res = await fetch(`${publisher.url}/v1/channels/news/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ k }),
    });
    assert.equal(res.status, 202, await res.text());
  };

  test("drained gateway, automatic reconnect elsewhere with Last-Event-ID: every message once", async () => {
    const token = await hsToken({ sub: "browser", channels: ["news"] });
    const page = await browser!.newPage();
    // Same origin as the stream: the page is served through the proxy too.
    await page.goto(`http://127.0.0.1:${proxy.port}/healthz`);
    await page.evaluate((t) => {
      const w = globalThis as unknown as { got: Got[] };
      w.got = [];
      const es = new EventSource(`/sse?channel=news&access_token=${t}`);
      es.onmessage = (e) => w.got.push({ id: e.lastEventId, frame: JSON.parse(e.data as string) as Got["frame"] });
    }, token);
    const got = () => page.evaluate(() => (globalThis as unknown as { got: Got[] }).got);
    const waitGot = (pred: string) =>
      page.waitForFunction((p) => (globalThis as unknown as { got: Got[] }).got.some((g) => new Function("g", `return ${p}`)(g) as boolean), pred, { timeout: 20_000 });

    await waitGot(`g.frame.type === "subscribed"`);
    await publish("m1");
    await waitGot(`g.frame.data && g.frame.data.k === "m1"`);

    proxy.setBackends([gwB.port]);
    gwA.kill("SIGTERM");
    await waitGot(`g.frame.type === "close" && g.frame.code === 1001`);
    // EventSource waits its retry time (about 3 s) before reconnecting: this one is missed live.
    await publish("m2");
    await waitGot(`g.frame.data && g.frame.data.k === "m2"`);
    await publish("m3");
    await waitGot(`g.frame.data && g.frame.data.k === "m3"`);

    const all = await got();
    const messages = all.filter((g) => g.frame.type === "message").map((g) => g.frame.data?.k);
    assert.deepEqual(messages, ["m1", "m2", "m3"]);
    assert.equal(all.filter((g) => g.frame.type === "welcome").length, 2, "two streams: one per gateway");
    const resumed = all.filter((g) => g.frame.type === "subscribed").at(-1)!.frame as { recovered?: boolean };
    assert.equal(resumed.recovered, true);
    await page.close();
  });
});
