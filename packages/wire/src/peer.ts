import type { ReplicaId } from '@decree/protocol';

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** Where each peer replica listens: a table, or a function asked again on every connection attempt. */
export type PeerDirectory = Readonly<Record<ReplicaId, PeerAddress>> | ((id: ReplicaId) => PeerAddress | undefined);

/** The address of `id` in a directory (own keys only), or undefined. */
export function peerAddress(dir: PeerDirectory, id: ReplicaId): PeerAddress | undefined {
  if (typeof dir === 'function') return dir(id);
  return Object.prototype.hasOwnProperty.call(dir, id) ? dir[id] : undefined;
}

export interface BackoffOptions {
  /** delay before the first retry (ms) */
  initialMs?: number;
  /** cap (ms) */
  maxMs?: number;
  factor?: number;
  /** 0..1: the delay is drawn uniformly from [d * (1 - jitter), d] */
  jitter?: number;
  /**
   * a connection must stay up this long (ms) for the backoff to start over (default 1000): a peer
   * that accepts and drops connections at once is retried with growing delays, not in a tight loop
   */
  resetAfterMs?: number;
}

/** The delay in ms before retry number `attempt` (0-based): capped exponential with jitter. */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? 50;
  const max = opts.maxMs ?? 5000;
  const factor = opts.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.5));
  const d = Math.min(max, initial * Math.pow(factor, Math.min(attempt, 64)));
  return d * (1 - jitter * random());
}
