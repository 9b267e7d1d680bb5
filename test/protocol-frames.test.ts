/**
 * The client-frame parser of the herald.v1 protocol (packages/core/src/protocol.ts):
 * what parseClientFrame accepts and how it refuses (always bad_request, with
 * the frame's id when it had a valid one), peekRequestId for frames refused
 * unparsed, and hasRawControlCharacter, the trace an unmasked frame leaves.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FrameError, hasRawControlCharacter, parseClientFrame, peekRequestId } from "../packages/core/src/protocol.js";

/** Asserts `text` is refused with bad_request, a message matching `message` and the given id. */
function refused(text: string, message: RegExp, id?: string | number): void {
  assert.throws(
    () => parseClientFrame(text),
    (err: unknown) => {
      assert.ok(err instanceof FrameError, `FrameError for ${text}`);
      assert.equal(err.code, "bad_request");
      assert.match(err.message, message);
      assert.equal(err.id, id, `id of ${text}`);
      return true;
    },
  );
}

const bytes = (text: string) => {
  const b = Buffer.from(text, "utf8");
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};

describe("parseClientFrame", () => {
  test("the four frame types, with and without an id; extra fields are ignored", () => {
    assert.deepEqual(parseClientFrame('{"type":"subscribe","channel":"news.eu"}'), { type: "subscribe", channel: "news.eu" });
    assert.deepEqual(parseClientFrame('{"type":"subscribe","channel":"news","id":7,"since":0}'), { type: "subscribe", channel: "news", id: 7, since: 0 });
    assert.deepEqual(parseClientFrame('{"type":"unsubscribe","channel":"news","id":"u-1","x":1}'), { type: "unsubscribe", channel: "news", id: "u-1" });
    assert.deepEqual(parseClientFrame('{"type":"ping"}'), { type: "ping" });
    assert.deepEqual(parseClientFrame('{"id":"p","type":"ping"}'), { type: "ping", id: "p" });
  });

  test("publish carries its data as compact JSON text; null and falsy data are data too", () => {
    assert.deepEqual(parseClientFrame('{"type":"publish","channel":"chat","data":{ "a" : [1, 2] },"id":1}'), {
      type: "publish",
      channel: "chat",
      payload: '{"a":[1,2]}',
      id: 1,
    });
    for (const [data, payload] of [["null", "null"], ["0", "0"], ['""', '""'], ["false", "false"]] as const) {
      assert.deepEqual(parseClientFrame(`{"type":"publish","channel":"c","data":${data}}`), { type: "publish", channel: "c", payload });
    }
    refused('{"type":"publish","channel":"c"}', /publish needs data/);
  });

  test("the channel is only type-checked here (its rules are checked where it is used)", () => {
    assert.deepEqual(parseClientFrame('{"type":"subscribe","channel":"a..b"}'), { type: "subscribe", channel: "a..b" });
    refused('{"type":"subscribe","channel":5,"id":"s"}', /channel must be a string/, "s");
    refused('{"type":"unsubscribe","id":3}', /channel must be a string/, 3);
    refused('{"type":"publish","channel":null,"data":1}', /channel must be a string/);
  });

  test("not JSON, or not an object: refused without an id", () => {
    for (const text of ["", "{", "nope", '{"type":"ping",}']) refused(text, /not valid JSON/);
    for (const text of ["[]", "null", "42", '"ping"', '[{"type":"ping"}]']) refused(text, /must be a JSON object/);
  });

  test("ids: finite numbers or strings of at most 64 characters; a bad id is never echoed", () => {
    assert.equal(parseClientFrame(`{"type":"ping","id":"${"x".repeat(64)}"}`).id, "x".repeat(64));
    assert.equal(parseClientFrame('{"type":"ping","id":-1.5}').id, -1.5);
    refused(`{"type":"ping","id":"${"x".repeat(65)}"}`, /id must be/);
    refused('{"type":"ping","id":{"a":1}}', /id must be/);
    refused('{"type":"ping","id":null}', /id must be/);
    refused('{"type":"ping","id":true}', /id must be/);
  });

  test("since: a non-negative safe integer", () => {
    assert.equal((parseClientFrame('{"type":"subscribe","channel":"c","since":12}') as { since?: number }).since, 12);
    for (const since of ["-1", "1.5", '"3"', "null", String(2 ** 53)]) {
      refused(`{"type":"subscribe","channel":"c","since":${since},"id":9}`, /since must be a non-negative integer/, 9);
    }
  });

  test("unknown or missing types are named (shortened), with the id", () => {
    refused('{"type":"subscribeX","id":1}', /unknown frame type "subscribeX"/, 1);
    refused(`{"type":"${"y".repeat(100)}"}`, new RegExp(`unknown frame type "${"y".repeat(40)}"$`));
    refused('{"channel":"c"}', /unknown frame type undefined/);
    refused('{"type":3}', /unknown frame type number/);
  });

  test("data nested too deeply for JSON.stringify is a bad frame with its id, not a crash", () => {
    const nested = (depth: number) => `{"type":"publish","channel":"c","id":"deep","data":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    assert.equal(parseClientFrame(nested(100)).type, "publish");
    refused(nested(100_000), /data is nested too deeply/, "deep");
  });
});

describe("peekRequestId", () => {
  test("reads a valid id of a small frame, whatever else the frame holds", () => {
    assert.equal(peekRequestId(bytes('{"type":"publish","id":"r-1","data":{}}')), "r-1");
    assert.equal(peekRequestId(bytes('{"id":42,"type":"nonsense"}')), 42);
  });

  test("none for invalid ids, malformed or non-object frames and frames over 4096 bytes", () => {
    for (const text of ['{"type":"ping"}', `{"id":"${"x".repeat(65)}"}`, '{"id":[1]}', "not json", "null", "[1]", '"id"']) {
      assert.equal(peekRequestId(bytes(text)), undefined, text);
    }
    const big = `{"id":"big","data":"${"a".repeat(4096)}"}`;
    assert.equal(peekRequestId(bytes(big)), undefined);
    const atLimit = `{"id":"edge","data":"${"a".repeat(4096 - 23)}"}`;
    assert.equal(Buffer.byteLength(atLimit), 4096);
    assert.equal(peekRequestId(bytes(atLimit)), "edge");
  });
});

describe("hasRawControlCharacter", () => {
  test("JSON whitespace (tab, LF, CR) is fine; other C0 controls are not", () => {
    assert.equal(hasRawControlCharacter('{"type":"ping"}\t\r\n'), false);
    assert.equal(hasRawControlCharacter(""), false);
    assert.equal(hasRawControlCharacter("caf\u00e9 \u2028 \u007f"), false, "DEL and non-ASCII are not C0");
    for (const c of [0x00, 0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f]) {
      assert.equal(hasRawControlCharacter(`{"a":"${String.fromCharCode(c)}"}`), true, `U+${c.toString(16).padStart(4, "0")}`);
    }
  });

  test("an unmasked frame read with its first four bytes as the mask turns into control characters", () => {
    const frame = Buffer.from('{"type":"subscribe","channel":"news"}', "utf8");
    const mask = frame.subarray(0, 4);
    const unmasked = Buffer.from(frame.subarray(4).map((b, i) => b ^ mask[i % 4]!));
    assert.equal(hasRawControlCharacter(unmasked.toString("latin1")), true);
    assert.equal(hasRawControlCharacter(frame.toString("utf8")), false);
  });
});
