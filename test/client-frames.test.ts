/**
 * parseServerFrame (packages/client/src/frames.ts): every server frame type
 * of docs/protocol.md §7 well-formed and malformed; and what the client does
 * with a malformed frame (driven through a scripted socket): the request it
 * answers rejects with protocol_error, anything else is an `error` event,
 * and the connection stays up.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldError } from "@herald/client";
import { MalformedFrameError, parseServerFrame } from "../packages/client/src/frames.js";
import { flushAsync, scriptedClient, track } from "./helpers/scripted-socket.js";

/** Frames exactly as docs/protocol.md §7 shows them. */
const GOOD: Array<Record<string, unknown>> = [
  { type: "welcome", sub: "user-1", connection: "k3J9dQx0mZ1aB2cD" },
  { type: "subscribed", channel: "news.eu", id: 1, seq: 1234, recovered: true },
  { type: "subscribed", channel: "news.eu", id: 1, seq: 0, recovered: false },
  { type: "subscribed", channel: "news.eu", id: 1 },
  { type: "subscribed", channel: "news.eu" },
  { type: "unsubscribed", channel: "news.eu", id: 2 },
  { type: "ack", id: 3 },
  { type: "ack" },
  { type: "pong", id: 4 },
  { type: "pong", id: "a string id" },
  { type: "message", channel: "news.eu", seq: 1240, prev: 1236, data: { any: "json" } },
  { type: "message", channel: "news.eu", data: { any: "json" } },
  { type: "message", channel: "news.eu", data: null },
  { type: "message", channel: "files.7", seq: 1241, prev: 1240, data: "iVBORw0KGgo=", encoding: "base64" },
  { type: "message", user: "user-1", data: { direct: "message" } },
  { type: "error", id: 1, code: "forbidden", message: "token does not allow subscribing to news.eu" },
  { type: "error", code: "bad_request", message: "frame is not valid JSON" },
  { type: "error", code: "rate_limited" },
  { type: "welcome", sub: "u", connection: "c", addedLater: { ignored: true } },
];

/** [frame text, what the error message must mention, the request id it must carry]. */
const BAD: Array<[string, RegExp, number | string | undefined]> = [
  ["not json", /not JSON/, undefined],
  ["[1,2]", /not a JSON object/, undefined],
  ["null", /not a JSON object/, undefined],
  ['"welcome"', /not a JSON object/, undefined],
  ['{"sub":"u"}', /type must be a string/, undefined],
  ['{"type":7}', /type must be a string/, undefined],
  ['{"type":"ack","id":{"n":1}}', /id must be/, undefined],
  ['{"type":"pong","id":null}', /id must be/, undefined],
  ['{"type":"welcome","connection":"c"}', /welcome.*sub/, undefined],
  ['{"type":"welcome","sub":"u","connection":5}', /welcome.*connection/, undefined],
  ['{"type":"subscribed","id":3}', /subscribed.*channel/, 3],
  ['{"type":"subscribed","channel":"a","id":3,"seq":-1}', /subscribed.*seq/, 3],
  ['{"type":"subscribed","channel":"a","id":3,"seq":1.5}', /subscribed.*seq/, 3],
  ['{"type":"subscribed","channel":"a","id":3,"seq":"7"}', /subscribed.*seq/, 3],
  ['{"type":"subscribed","channel":"a","id":3,"recovered":"yes"}', /subscribed.*recovered/, 3],
  ['{"type":"unsubscribed","id":"x"}', /unsubscribed.*channel/, "x"],
  ['{"type":"message","data":1}', /message.*channel or user/, undefined],
  ['{"type":"message","channel":5,"data":1}', /message.*channel or user/, undefined],
  ['{"type":"message","user":["u"],"data":1}', /message.*channel or user/, undefined],
  ['{"type":"message","channel":"a"}', /message.*data/, undefined],
  ['{"type":"message","channel":"a","data":"AA==","encoding":"gzip"}', /message.*encoding/, undefined],
  ['{"type":"message","channel":"a","data":{"n":1},"encoding":"base64"}', /message.*encoding/, undefined],
  ['{"type":"message","channel":"a","data":1,"seq":2,"prev":-1}', /message.*prev/, undefined],
  ['{"type":"message","channel":"a","data":1,"seq":"2","prev":1}', /message.*seq/, undefined],
  ['{"type":"error","id":9,"message":"no code"}', /error.*code/, 9],
  ['{"type":"error","id":9,"code":""}', /error.*code/, 9],
  ['{"type":"error","id":9,"code":"forbidden","message":{"text":"x"}}', /error.*message/, 9],
];

describe("parseServerFrame", () => {
  test("every well-formed server frame is returned as parsed (unknown fields kept, nothing copied)", () => {
    for (const frame of GOOD) assert.deepEqual(parseServerFrame(JSON.stringify(frame)), frame, JSON.stringify(frame));
  });

  test("malformed frames throw a MalformedFrameError (a HeraldError, code protocol_error) naming the field and the request id", () => {
    for (const [text, what, id] of BAD) {
      assert.throws(
        () => parseServerFrame(text),
        (err: unknown) => {
          assert.ok(err instanceof MalformedFrameError, `${text}: ${String(err)}`);
          assert.equal(err.name, "HeraldError");
          assert.equal(err.code, "protocol_error", text);
          assert.match(err.message, what, text);
          assert.equal(err.requestId, id, text);
          return true;
        },
      );
    }
  });

  test("a well-formed frame of a type this client does not know (a newer server) is undefined, not an error", () => {
    assert.equal(parseServerFrame('{"type":"notice","channel":"a","users":["u"]}'), undefined);
  });
});

describe("the client and malformed frames (scripted socket)", () => {
  test("a malformed reply naming a waiting request's id rejects it with protocol_error at once; the connection stays up", async () => {
    const { client, sock } = await scriptedClient();
    const errors: HeraldError[] = [];
    client.on("error", (e) => errors.push(e));
    const pub = track(client.publish("chat", { text: "hi" }));
    sock.onmessage?.({ data: `{"type":"error","id":${sock.lastSent("publish")["id"] as number},"code":7}` });
    await flushAsync();
    assert.equal(pub.status, "rejected");
    assert.ok(pub.error instanceof HeraldError && pub.error.code === "protocol_error", String(pub.error));
    assert.deepEqual(errors, [], "settled through the promise, not also as an event");

    const sub = track(client.subscribe("news"));
    sock.onmessage?.({ data: `{"type":"subscribed","id":${sock.lastSent("subscribe")["id"] as number}}` });
    await flushAsync();
    assert.equal(sub.status, "rejected");
    assert.ok(sub.error instanceof HeraldError && sub.error.code === "protocol_error" && sub.error.channel === "news", String(sub.error));
    assert.equal(client.state, "connected");
    client.close();
  });

  test("any other malformed frame is an `error` event and is ignored; well-formed frames keep flowing", async () => {
    const { client, sock, got } = await scriptedClient();
    const errors: HeraldError[] = [];
    client.on("error", (e) => errors.push(e));
    const p = client.subscribe("news");
    sock.push({ type: "subscribed", channel: "news", id: sock.lastSent("subscribe")["id"] });
    await p;
    sock.onmessage?.({ data: "not json" });
    sock.push({ type: "message", channel: "news", data: "AA==", encoding: "zstd" });
    sock.push({ type: "message", data: "no destination" });
    sock.push({ type: "notice", channel: "news" }); // unknown type: ignored without an error
    sock.push({ type: "message", channel: "news", data: "fine" });
    assert.deepEqual(errors.map((e) => e.code), ["protocol_error", "protocol_error", "protocol_error"]);
    assert.deepEqual(got.map((m) => m.data), ["fine"]);
    assert.equal(client.state, "connected");
    client.close();
  });
});
