import fc from 'fast-check';
import { decodeMessage, encodeMessage, type Message, type MessageType, type ReplicaId, laneOf } from '@decree/protocol';
import { anyMessage, normal, samples } from '../../protocol/test/arbitraries.ts';
import {
  createTcpTransport,
  type TcpTransport,
  type TcpTransportOptions,
  type TransportError,
  type TransportLogger,
} from '../src/index.ts';

/** One sample of `type` (the protocol's own fixtures, every optional field present), re-addressed. */
export function makeMessage(type: MessageType, from: ReplicaId, to: ReplicaId, ring = 'ring-1'): Message {
  return { ...samples[type], ring, from, to } as Message;
}

/** Any message type with arbitrary contents (the protocol's arbitraries), re-addressed. */
export function arbMessage(from: ReplicaId, to: ReplicaId, ring: string): fc.Arbitrary<Message> {
  return anyMessage.map((m) => ({ ...m, ring, from, to }) as Message);
}

/**
 * Canonical form of a message, to compare what arrived with what was sent: a transport must
 * deliver exactly what the codec gives back locally.
 */
export const wire = (m: Message): string => JSON.stringify(normal(decodeMessage(encodeMessage(m))));

/**
 * Messages in wire form per lane: order is kept within a lane (control is written ahead of bulk,
 * so across lanes it is not).
 */
export const byLane = (ms: readonly Message[]): { control: string[]; bulk: string[] } => ({
  control: ms.filter((m) => laneOf(m) === 'control').map(wire),
  bulk: ms.filter((m) => laneOf(m) === 'bulk').map(wire),
});

export function captureLogger(): { lines: { level: string; msg: string; obj: object }[]; logger: TransportLogger } {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const push = (level: string) => (obj: object, msg: string) => lines.push({ level, msg, obj });
  return { lines, logger: { debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') } };
}

export interface Node {
  t: TcpTransport;
  got: Message[];
  errors: TransportError[];
  logs: { level: string; msg: string; obj: object }[];
  port: number;
}

/** A transport on 127.0.0.1 (port 0 unless given) that records what it receives, its errors and logs. */
export async function node(
  self: ReplicaId | ReplicaId[],
  peers: TcpTransportOptions['peers'],
  extra: Partial<TcpTransportOptions> = {},
): Promise<Node> {
  const { lines, logger } = captureLogger();
  const errors: TransportError[] = [];
  const got: Message[] = [];
  const t = await createTcpTransport({
    self,
    listen: { host: '127.0.0.1', port: 0 },
    peers,
    logger,
    onError: (e) => errors.push(e),
    backoff: { initialMs: 5, maxMs: 50 },
    ...extra,
  });
  t.setReceiver((m) => got.push(m));
  return { t, got, errors, logs: lines, port: t.address()?.port ?? 0 };
}

/** Polls `cond` until it holds; throws with `what` after `timeoutMs` (generous: CI machines are slow). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
