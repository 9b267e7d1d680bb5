/** Thrown by kill()/restart() of a NATS the tests do not control (NATS_URL, a container). */
export class NatsControlUnsupported extends Error {
  constructor(what: string) {
    super(`${what} is not supported for a NATS the tests do not control (NATS_URL or a container)`);
  }
}
