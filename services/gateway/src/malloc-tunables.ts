/**
 * glibc's allocator keeps freed memory for reuse, and after the first large
 * free it raises its mmap threshold (up to 32 MiB), so the buffers uWS
 * allocates per socket for unfinished frames and send backlogs come from the
 * heap and stay resident long after those sockets close. A fixed threshold
 * switches that adjustment off: buffers of 64 KiB and more get a mapping of
 * their own, returned to the system when freed. It must be in the
 * environment when the process starts, so `npm run gateway`, `npm start` and
 * the images set it; the gateway warns when it runs without.
 */
export const GLIBC_TUNABLES_DEFAULT = "glibc.malloc.mmap_threshold=65536";

/** True when the running process got a fixed mmap threshold (or is not on glibc). */
export function mallocTunablesSet(env: Readonly<Record<string, string | undefined>>): boolean {
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
  if (!glibc) return true;
  return /glibc\.malloc\.(mmap|trim)_threshold=/.test(env["GLIBC_TUNABLES"] ?? "");
}
