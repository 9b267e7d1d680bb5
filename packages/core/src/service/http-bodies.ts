/**
 * The JSON bodies both services answer with (docs/publisher-api.md "Health
 * and metrics endpoints"): one error shape and one readiness shape, so a
 * client, a probe or an operator reads the gateway and the publisher alike.
 */

/** `{"error":{"code","message"}}`; 401s add `reason`, the finer cause. */
export interface ErrorBody {
  error: { code: string; reason?: string; message: string };
}

export function errorBody(code: string, message: string, reason?: string): ErrorBody {
  return { error: reason === undefined ? { code, message } : { code, reason, message } };
}

export interface ReadinessState {
  readonly brokerConnected: boolean;
  readonly draining: boolean;
  /** False while the service still loads what it needs before serving (the gateway's revocation list); absent = nothing to load. */
  readonly loaded?: boolean;
}

/** Why a service is not ready; draining wins over a lost broker, which wins over loading. */
export type NotReadyReason = "draining" | "broker_disconnected" | "starting";

export interface ReadinessBody {
  status: "ready" | "not ready";
  /** Present when not ready. */
  reason?: NotReadyReason;
  broker: "connected" | "disconnected";
  draining: boolean;
  /** Service-specific fields, e.g. the gateway's open `connections`. */
  [detail: string]: unknown;
}

/** The /readyz answer: 200 when the broker is connected and the service is not draining, else 503. */
export function readinessReply(state: ReadinessState, detail: Readonly<Record<string, unknown>> = {}): { ready: boolean; status: 200 | 503; body: ReadinessBody } {
  const loaded = state.loaded ?? true;
  const ready = state.brokerConnected && !state.draining && loaded;
  const reason: NotReadyReason | undefined = state.draining ? "draining" : !state.brokerConnected ? "broker_disconnected" : loaded ? undefined : "starting";
  const body: ReadinessBody = {
    status: ready ? "ready" : "not ready",
    ...(reason === undefined ? {} : { reason }),
    broker: state.brokerConnected ? "connected" : "disconnected",
    draining: state.draining,
    ...detail,
  };
  return { ready, status: ready ? 200 : 503, body };
}
