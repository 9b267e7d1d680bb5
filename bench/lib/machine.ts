/** A description of the machine a run happened on (goes into every result). */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { natsServerBinary } from "../../test/helpers/nats-source.js";

export function describeMachine(): Record<string, unknown> {
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8");
    } catch {
      return "";
    }
  };
  const osRelease = /PRETTY_NAME="([^"]+)"/.exec(read("/etc/os-release"))?.[1];
  let nats = "";
  try {
    nats = execFileSync(natsServerBinary() ?? "nats-server", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    nats = "unknown";
  }
  const limit = /Max open files\s+(\d+)/.exec(read("/proc/self/limits"))?.[1];
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: osRelease ?? `${os.type()} ${os.release()}`,
    kernel: os.release(),
    node: process.version,
    natsServer: nats,
    openFilesLimit: limit ? Number(limit) : undefined,
    hostname: os.hostname(),
  };
}
