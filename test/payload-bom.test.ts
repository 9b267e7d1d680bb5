/**
 * A payload that starts with a UTF-8 byte order mark (issue 8): it is valid
 * JSON to a decoder that skips the BOM, but embedded verbatim it makes every
 * frame unparseable (`"data":\ufeff{...}`). Through the publisher and through
 * raw NATS, live and recovering subscribers must get valid JSON frames with
 * the BOM dropped, and a payload that is not JSON after the BOM goes base64.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect as natsConnect, type NatsConnection } from "nats";
import { messageFrame, channelMessageHead } from "../packages/core/src/protocol.js";
import { type NatsServer } from "./helpers/nats.js";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { hsToken } from "./helpers/tokens.js";
import { connect, type Frame } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

const API_KEY = "bom-test-api-key-0123456789";
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

test("messageFrame drops a leading BOM and never embeds bytes a JSON parser refuses", () => {
  const head = channelMessageHead("c");
  const cases: Array<[Buffer, unknown]> = [
    [Buffer.concat([BOM, Buffer.from('{"a":1}')]), { a: 1 }],
    [Buffer.concat([BOM, Buffer.from(" [1,2] ")]), [1, 2]],
    [Buffer.from('{"a":1}'), { a: 1 }],
  ];
  for (const [payload, data] of cases) {
    const frame = JSON.parse(messageFrame(head, payload, 3, 1).toString("utf8")) as Frame;
    assert.deepEqual(frame["data"], data);
    assert.equal(frame["encoding"], undefined);
  }
  // Two BOMs, or a BOM alone: not one JSON value once the first is dropped.
  for (const payload of [Buffer.concat([BOM, BOM, Buffer.from("{}")]), BOM]) {
    const frame = JSON.parse(messageFrame(head, payload).toString("utf8")) as Frame;
    assert.equal(frame["encoding"], "base64");
    assert.deepEqual(Buffer.from(frame["data"] as string, "base64"), payload);
  }
});

describe("BOM payloads end to end (JetStream history)", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  let nats: NatsServer;
  let gw: ServiceProcess;
  let publisher: ServiceProcess;
  let nc: NatsConnection;
  const stack = new TestStack();
  const { clients } = stack;

  before(async () => {
    nats = await stack.nats({ jetstream: true });
    const common = { HISTORY_STREAM: "BOM_TEST" };
    [gw, publisher] = await Promise.all([stack.gateway(nats, common), stack.publisher(nats, { ...common, PUBLISHER_API_KEY: API_KEY })]);
    nc = await natsConnect({ servers: nats.url });
    stack.defer(() => nc.close());
  });
  after(() => stack.close());

  test("live and recovering subscribers get parseable frames with the BOM dropped", async () => {
    const token = await hsToken({ sub: "bom-reader", channels: ["bom"] });
    const live = await connect(gw.wsUrl, { token });
    clients.push(live);
    const sub = await live.request({ type: "subscribe", channel: "bom", id: 1 });
    assert.equal(sub["type"], "subscribed");
    const start = sub["seq"] as number;

    const res = await fetch(`${publisher.url}/v1/channels/bom/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: Buffer.concat([BOM, Buffer.from('{"via":"publisher"}')]),
    });
    assert.equal(res.status, 202, await res.text());
    await nc.request("herald.ch.bom", Buffer.concat([BOM, Buffer.from('{"via":"nats"}')]), { timeout: 5000 }).catch(() => {
      // Core NATS publish into the stream; the stream acks, which is the reply here.
    });

    const isBom = (f: Frame) => f.type === "message" && f.channel === "bom";
    const first = await live.next(isBom);
    const second = await live.next(isBom);
    assert.deepEqual([first["data"], second["data"]], [{ via: "publisher" }, { via: "nats" }]);
    assert.equal(live.rawFrames.length, 0, `unparseable frames: ${String(live.rawFrames[0])}`);

    // A socket resuming from before both reads them from the history.
    const late = await connect(gw.wsUrl, { token });
    clients.push(late);
    const resumed = await late.request({ type: "subscribe", channel: "bom", id: 2, since: start });
    assert.equal(resumed["recovered"], true);
    const r1 = await late.next(isBom);
    const r2 = await late.next(isBom);
    assert.deepEqual([r1["data"], r2["data"]], [{ via: "publisher" }, { via: "nats" }]);
    assert.equal(late.rawFrames.length, 0, `unparseable frames: ${String(late.rawFrames[0])}`);
  });
});
