/** Small HTTP probes for readiness waits and assertions; a failed connection is an answer too. */

/** Status of GET `url`, undefined when the connection failed or timed out. */
export async function httpStatus(url: string, timeoutMs = 1000): Promise<number | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return undefined;
  }
}

/** True when GET `url` answers 200. */
export async function httpOk(url: string, timeoutMs = 1000): Promise<boolean> {
  return (await httpStatus(url, timeoutMs)) === 200;
}

/** GET a path of a service; undefined status when the connection failed. */
export async function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number | undefined; body: string; headers: Headers | undefined }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text(), headers: res.headers };
  } catch {
    return { status: undefined, body: "", headers: undefined };
  }
}

/** GET `url` as JSON; throws unless the answer is 200. */
export async function getJson<T = unknown>(url: string, timeoutMs = 2000): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`GET ${url} -> ${res.status}`);
  return (await res.json()) as T;
}
