/**
 * HTTP errors and JSON replies. Every error body has the same shape,
 * `{"error":{"code","message"}}` (401s add `reason`), with a stable code callers can test on.
 */
import type { ServerResponse } from "node:http";
import { errorBody } from "@herald/core";

export type ErrorCode =
  | "bad_request"
  | "invalid_channel"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "too_large"
  | "unsupported_media_type"
  | "unavailable"
  | "internal";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    /** A finer cause sent beside the code (`error.reason`), e.g. why a token was refused. */
    readonly reason?: string,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.setHeader("Cache-Control", "no-store");
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, errorBody(err.code, err.message, err.reason), err.headers);
}
