/**
 * The text/event-stream format (WHATWG HTML "Server-sent events"), read
 * incrementally: text arrives in chunks cut anywhere (inside a line, between
 * the CR and LF of a CRLF), lines end with CRLF, LF or CR, an event is its
 * `data` lines joined with "\n" and ends with a blank line. Comments (`:`)
 * and the fields the client has no use for (`id`, `event`, `retry`) are
 * skipped: herald.v1 frames say what they are, and the client resumes with
 * its own positions (subscribe since/epoch), not Last-Event-ID.
 */
export class SseParser {
  /** The unfinished line of the last chunk. */
  private line = "";
  /** The last chunk ended with CR: an LF at the start of the next one belongs to it. */
  private afterCR = false;
  private data: string[] = [];

  constructor(private readonly onEvent: (data: string) => void) {}

  /** Feeds decoded text; calls onEvent for every event it completes. */
  push(chunk: string): void {
    let start = 0;
    if (this.afterCR && chunk.startsWith("\n")) start = 1;
    this.afterCR = false;
    // Where the next CR is, kept across lines: a stream of LF lines would
    // otherwise search the whole chunk for a CR once per line.
    let cr = chunk.indexOf("\r", start);
    for (;;) {
      if (cr >= 0 && cr < start) cr = chunk.indexOf("\r", start);
      const lf = chunk.indexOf("\n", start);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      this.takeLine(this.line + chunk.slice(start, end));
      this.line = "";
      if (chunk.charCodeAt(end) === 13 /* CR */) {
        if (end + 1 === chunk.length) {
          this.afterCR = true;
          return;
        }
        start = chunk.charCodeAt(end + 1) === 10 ? end + 2 : end + 1;
      } else {
        start = end + 1;
      }
    }
    this.line += chunk.slice(start);
  }

  private takeLine(line: string): void {
    if (line === "") {
      // A blank line dispatches; one with no data lines (a comment block) does nothing.
      if (this.data.length > 0) {
        const data = this.data.join("\n");
        this.data = [];
        this.onEvent(data);
      }
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== "data") return;
    // One space after the colon is part of the syntax, not of the value.
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    this.data.push(value);
  }
}
