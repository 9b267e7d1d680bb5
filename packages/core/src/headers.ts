/** NATS header names carried from publisher to gateway (DESIGN.md "Publisher API"). */
export const Header = {
  Id: "Herald-Id",
  PublishedAt: "Herald-Published-At",
  TraceParent: "traceparent",
  TraceState: "tracestate",
} as const;
