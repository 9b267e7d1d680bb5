/**
 * V8 grows its young generation (two semi-spaces) up to 16 MiB each under a
 * burst of allocation, and a connect storm is one; the pages stay resident.
 * That is 32 MiB of RSS with nothing in it, which at 10k connections reads as
 * 3 KB per connection. The gateway's lasting state lives in the old
 * generation and its delivery path allocates little (a frame per message, not
 * per recipient), so a 1 MiB semi-space costs no CPU that the benchmarks can
 * tell apart (bench/results/memory-per-connection.md) and RSS follows the
 * connections. It is a V8 flag, read once when node starts: `npm run
 * gateway`, `npm start` and the image pass it; the gateway warns without it.
 */
export const SEMI_SPACE_FLAG = "--max-semi-space-size=1";

/** True when node was started with a semi-space cap (on its command line or in NODE_OPTIONS). */
export function semiSpaceCapped(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const given = (arg: string) => /^--max[-_]semi[-_]space[-_]size(=|$)/.test(arg);
  return execArgv.some(given) || (nodeOptions ?? "").split(/\s+/).some(given);
}
