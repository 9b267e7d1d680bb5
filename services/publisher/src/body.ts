/**
 * Reads a JSON request body with a hard size limit. The limit is enforced
 * before reading (Content-Length) and while streaming (counted bytes), so an
 * oversized or chunked upload is refused without being buffered.
 * The body is returned as raw bytes: the publisher forwards exactly what the
 * caller sent and only parses it to check that it is JSON.
 */
import type { IncomingMessage } from "node:http";
import { HttpError } from "./http-error.js";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** `application/json`, optionally with a utf-8 charset parameter. */
export function checkContentType(value: string | undefined): void {
  if (value === undefined || value.trim() === "") return;
  const [type = "", ...params] = value.split(";").map((s) => s.trim().toLowerCase());
  if (type !== "application/json") {
    throw new HttpError(415, "unsupported_media_type", "Content-Type must be application/json");
  }
  for (const param of params) {
    const [name, raw = ""] = param.split("=").map((s) => s.trim());
    if (name === "charset" && raw.replace(/"/g, "") !== "utf-8" && raw.replace(/"/g, "") !== "utf8") {
      throw new HttpError(415, "unsupported_media_type", "only the utf-8 charset is supported");
    }
  }
}

export function tooLarge(limit: number): HttpError {
  // Nothing more is buffered; the app discards the rest for a bounded time, then closes.
  return new HttpError(413, "too_large", `body is larger than ${limit} bytes`);
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(limit));

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;

    const settle = (err: HttpError | undefined, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (err) reject(err);
      else resolve(body ?? Buffer.alloc(0));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        settle(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => settle(undefined, Buffer.concat(chunks, size));
    const onError = (): void => settle(new HttpError(400, "bad_request", "request body could not be read"));
    const onClose = (): void => {
      if (!req.complete) settle(new HttpError(400, "bad_request", "request body was cut short"));
    };

    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** Reads the body and checks that it is one UTF-8 JSON value. */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  checkContentType(req.headers["content-type"]);
  const body = await readBody(req, limit);
  if (body.length === 0) throw new HttpError(400, "bad_request", "body must be a JSON value");
  try {
    JSON.parse(utf8.decode(body));
  } catch {
    throw new HttpError(400, "bad_request", "body is not valid UTF-8 JSON");
  }
  return body;
}
