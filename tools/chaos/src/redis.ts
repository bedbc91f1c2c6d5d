/**
 * ioredis (a Redis client nobody here wrote) with every automatic retry turned off. A command whose
 * reply did not arrive is *in doubt*: the harness never resends it, and ioredis must not either, or a
 * client-side retry of an INCR would be blamed on the server.
 */
import { Redis, type RedisOptions } from 'ioredis';

/** The options that keep ioredis from ever sending a command twice or reconnecting by itself. */
export const NO_RETRY_OPTIONS: RedisOptions = {
  maxRetriesPerRequest: 0,
  enableOfflineQueue: false,
  retryStrategy: () => null,
  autoResendUnfulfilledCommands: false,
  reconnectOnError: () => false,
  enableAutoPipelining: false,
  // the server speaks RESP2; no INFO ready check, no CLIENT SETINFO: the first bytes sent are ours
  protocol: 2,
  enableReadyCheck: false,
  disableClientInfo: true,
  lazyConnect: true,
};

/** Connects a no-retry ioredis client to 127.0.0.1:`port`; rejects when that fails within `timeoutMs`. */
export async function connectNoRetry(port: number, timeoutMs = 2000): Promise<Redis> {
  const r = new Redis({ ...NO_RETRY_OPTIONS, host: '127.0.0.1', port, connectTimeout: timeoutMs });
  r.on('error', () => {}); // connection errors surface as rejected commands; no unhandled 'error' events
  try {
    await r.connect();
  } catch (e) {
    r.disconnect(false);
    throw e;
  }
  return r;
}

/** Why a command has no usable answer. `reply-error`: the server answered with an error (TRYAGAIN, ERR…). */
export type DoubtCause = 'reply-error' | 'timeout' | 'connection-lost' | 'not-connected';

/** Classifies an ioredis rejection. Every cause leaves the command in doubt: none proves it did not run. */
export function doubtCause(e: unknown, timedOut: boolean): DoubtCause {
  if (timedOut) return 'timeout';
  const err = e as Error & { name?: string };
  if (err?.name === 'ReplyError') return 'reply-error';
  const m = err?.message ?? String(e);
  if (/enableOfflineQueue|Stream isn't writeable/i.test(m)) return 'not-connected';
  return 'connection-lost';
}

/** The first word of a server error (`TRYAGAIN`, `ERR`…), or the cause for anything else. */
export function causeLabel(e: unknown, timedOut: boolean): string {
  const c = doubtCause(e, timedOut);
  if (c !== 'reply-error') return c;
  return ((e as Error).message ?? '').split(' ')[0] || 'ERR';
}
