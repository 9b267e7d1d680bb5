/** Free TCP ports on the loopback interface. */
import { createServer } from "node:net";

/** Listens on 127.0.0.1:0, reads the port the kernel picked and closes again. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("could not read the port of a listening socket"));
        return;
      }
      const { port } = addr;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Several distinct free ports (all bound at once so they differ). */
export async function freePorts(n: number, host = "127.0.0.1"): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      return new Promise<import("node:net").Server>((resolve, reject) => {
        const srv = createServer();
        srv.unref();
        srv.once("error", reject);
        srv.listen(0, host, () => resolve(srv));
      });
    }),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === "string") throw new Error("no port");
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}
