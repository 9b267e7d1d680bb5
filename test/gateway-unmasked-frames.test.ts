/**
 * RFC 6455 §5.1: the server must close the connection on a frame that is not
 * masked (issue 8). uWebSockets.js reads every client frame as masked, so an
 * unmasked JSON frame reaches the gateway XORed with its own first bytes:
 * raw control characters no JSON text can hold. The gateway closes with
 * 1002 then, while plain malformed JSON still gets a `bad_request` frame.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { hasRawControlCharacter } from "../packages/core/src/protocol.js";
import { GATEWAY_MAIN, missingBuild, startGateway, waitFor, withTimeout, type ServiceProcess } from "./helpers/procs.js";
import { clientFrame, rawUpgrade, type RawSocket } from "./helpers/raw-ws.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";

test("hasRawControlCharacter: JSON whitespace is fine, other C0 characters are not", () => {
  assert.equal(hasRawControlCharacter('{"type":"ping",\n\t"id":1}\r\n'), false);
  assert.equal(hasRawControlCharacter('{"a":"\\u0001"}'), false);
  assert.equal(hasRawControlCharacter("{\u0001}"), true);
  assert.equal(hasRawControlCharacter("\u0000"), true);
});

describe("unmasked client frames", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  let gw: ServiceProcess;
  const sockets: RawSocket[] = [];

  before(async () => {
    gw = await startGateway({ JWT_SECRET: TEST_SECRET });
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await gw?.stop();
  });

  async function open(): Promise<RawSocket> {
    const s = await rawUpgrade(gw.port, { token: await hsToken({ sub: "framer", channels: ["x"] }) });
    sockets.push(s);
    await waitFor(() => s.texts.some((t) => t.includes('"welcome"')), { message: "welcome" });
    return s;
  }

  test("an unmasked frame closes the connection with 1002", async () => {
    const s = await open();
    const ping = Buffer.from('{"type":"ping","id":1}');
    // uWS takes the first 4 payload bytes as the key and waits for 4 more
    // (ASCII here; were they not valid UTF-8 once unmasked, uWS would drop
    // the connection itself, which the client sees as 1006).
    s.write(Buffer.concat([clientFrame(ping, { mask: false }), Buffer.from("    ")]));
    assert.equal(await withTimeout(s.ended, 5000, "close after an unmasked frame"), 1002);
    assert.ok(!s.texts.some((t) => t.includes('"pong"')), "the unmasked ping was not answered");
  });

  test("masked malformed JSON still gets bad_request and the connection stays open", async () => {
    const s = await open();
    s.write(clientFrame(Buffer.from("{not json")));
    s.write(clientFrame(Buffer.from('{"type":"ping","id":2}')));
    await waitFor(() => s.texts.some((t) => t.includes('"pong"')), { message: "pong after the bad frame" });
    assert.ok(s.texts.some((t) => t.includes('"bad_request"')));
    assert.equal(s.closeCode, undefined);
  });
});
