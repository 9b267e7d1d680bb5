/**
 * MAX_CONNECTIONS_PER_USER (issue 8): with the frame cap it bounds what one
 * token holder can make a gateway buffer in unfinished frames, whatever
 * addresses the connections come from. Refusals are 429 `user_limit` with
 * Retry-After, and a slot is free again once a connection closes. The
 * gateway is built in this process (buildGateway on the memory broker).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startGatewayInProcess, type InProcessGateway } from "./helpers/in-process.js";
import { waitFor } from "./helpers/wait.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { closeAll, connect, expectRejected, type Client } from "./helpers/ws.js";

describe("per-user connection limit", () => {
  let gw: InProcessGateway;
  const clients: Client[] = [];

  before(async () => {
    gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, MAX_CONNECTIONS_PER_USER: "2" });
  });

  after(async () => {
    await closeAll(clients);
    await gw?.close();
  });

  test("the third connection of one sub is refused from any address; other users are not affected", async () => {
    const alice = await hsToken({ sub: "alice" });
    clients.push(await connect(gw.wsUrl, { token: alice, localAddress: "127.0.0.2" }));
    clients.push(await connect(gw.wsUrl, { token: await hsToken({ sub: "alice" }), localAddress: "127.0.0.3" }));
    const refused = await expectRejected(gw.wsUrl, { token: alice, localAddress: "127.0.0.4" });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers["retry-after"], "10");
    assert.equal((JSON.parse(refused.body) as { error: { code: string } }).error.code, "user_limit");
    clients.push(await connect(gw.wsUrl, { token: await hsToken({ sub: "bob" }), localAddress: "127.0.0.4" }));

    await clients[0]!.close();
    const again = await waitFor(() => connect(gw.wsUrl, { token: alice, localAddress: "127.0.0.5" }).catch(() => undefined), {
      message: "a slot of alice is free after a close",
    });
    clients.push(again);
  });
});
