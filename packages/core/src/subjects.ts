/**
 * Every NATS subject Herald uses is built here, so no other module
 * concatenates client strings into subjects.
 */
import { channelProblem } from "./channels.js";

const SAFE_TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
const PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export function isValidSubjectPrefix(prefix: string): boolean {
  return PREFIX.test(prefix) && prefix.length <= 64;
}

/**
 * User ids (`sub`) are free-form (e.g. `auth0|123`, emails), but a subject
 * token cannot contain `.`, `*`, `>` or spaces. Plain ids are used as they
 * are; anything else becomes `~` + base64url(utf8), which is collision-free
 * because `~` never appears in a plain id.
 */
export function userToken(sub: string): string {
  return SAFE_TOKEN.test(sub) ? sub : "~" + Buffer.from(sub, "utf8").toString("base64url");
}

export class Subjects {
  readonly channelPrefix: string;
  readonly userPrefix: string;
  /** Where JetStream RePublish puts stored channel messages, with their positions. */
  readonly livePrefix: string;

  constructor(readonly prefix: string) {
    if (!isValidSubjectPrefix(prefix)) throw new Error(`invalid subject prefix: ${prefix}`);
    this.channelPrefix = `${prefix}.ch.`;
    this.userPrefix = `${prefix}.user.`;
    this.livePrefix = `${prefix}.live.`;
  }

  /** Subject for a channel that the caller has already validated. */
  channel(channel: string): string {
    const problem = channelProblem(channel);
    if (problem) throw new Error(problem);
    return this.channelPrefix + channel;
  }

  /** Channel name of a channel subject, or null when it is not one of ours. */
  channelOf(subject: string): string | null {
    return subject.startsWith(this.channelPrefix) ? subject.slice(this.channelPrefix.length) : null;
  }

  user(sub: string): string {
    return this.userPrefix + userToken(sub);
  }

  /** Control requests of the server API (publisher to every gateway): `<prefix>.ctl.<kind>`. */
  control(kind: string): string {
    if (!SAFE_TOKEN.test(kind)) throw new Error(`invalid control kind: ${kind}`);
    return `${this.prefix}.ctl.${kind}`;
  }

  /** Every control subject: what a gateway subscribes to. */
  allControl(): string {
    return `${this.prefix}.ctl.>`;
  }

  /** The kind of a control subject, or null when it is not one. */
  controlKindOf(subject: string): string | null {
    const head = `${this.prefix}.ctl.`;
    return subject.startsWith(head) ? subject.slice(head.length) : null;
  }

  /** Where gateways announce themselves (heartbeats to the server API's roster). */
  gatewayHello(): string {
    return `${this.prefix}.gw.hello`;
  }

  /**
   * Commands for one gateway's SSE streams (POST /sse/commands, posted to any
   * gateway): `route` is the gateway's random route token, the first part of
   * its streams' connection ids, base64url and so one subject token.
   */
  sseCommands(route: string): string {
    return `${this.prefix}.sse.${route}`;
  }

  /** Gateways' presence changes (batched joins and leaves of their own members). */
  presenceDeltas(): string {
    return `${this.prefix}.pres.delta`;
  }

  /** Requests for a gateway's presence members (a snapshot, answered in parts). */
  presenceSnapshots(): string {
    return `${this.prefix}.pres.snap`;
  }

  /** Gateways' presence heartbeats: alive, and at which change number. */
  presenceHeartbeats(): string {
    return `${this.prefix}.pres.hello`;
  }

  /** Wildcard covering every channel: the history stream's subjects. */
  allChannels(): string {
    return `${this.prefix}.ch.>`;
  }

  /** The subjects of one namespace's channels: the namespace's own channel and every one under it (a namespace history stream's subjects). */
  namespaceChannels(namespace: string): string[] {
    const own = this.channel(namespace);
    return [own, `${own}.>`];
  }

  /** Wildcard of the republished (positioned) channel messages. */
  allLive(): string {
    return `${this.prefix}.live.>`;
  }

  /** Republished subject of a channel subject. */
  liveOf(channelSubject: string): string {
    const channel = this.channelOf(channelSubject);
    if (channel === null) throw new Error(`not a channel subject: ${channelSubject}`);
    return this.livePrefix + channel;
  }
}
