/** NATS header names carried from publisher to gateway (DESIGN.md "Publisher API"). */
export const Header = {
  Id: "Herald-Id",
  PublishedAt: "Herald-Published-At",
  TraceParent: "traceparent",
  TraceState: "tracestate",
  /** Added by JetStream RePublish (and the memory broker): stream position of the message. */
  Sequence: "Nats-Sequence",
  /** Position of the previous message on the same subject, 0 for the first. */
  LastSequence: "Nats-Last-Sequence",
} as const;
