import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { createActor } from 'xstate';
import { Bus, realEnv } from '@decree/bus';
import { acceptorMachine } from '@decree/acceptor';
import { MemoryStore } from '@decree/storage/memory';
import {
  emptyRecoveredState,
  encodeMessage,
  type Message,
  type MessageOf,
  type ReplicaId,
  type SlotValue,
} from '@decree/protocol';
import {
  FrameReader,
  decodeWelcome,
  encodeAuth,
  encodeHello,
  frames,
  handshakeProof,
  type Welcome,
} from '../src/index.ts';
import type { Pem } from './certs.ts';

/**
 * A hand-driven client (plain TCP or TLS with a chosen certificate) that performs the Decree
 * handshake itself, so a test can claim any ids and then write any frames: an attacker's tool.
 */
export class Intruder {
  readonly socket: net.Socket;
  readonly frames: Buffer[] = [];
  closed = false;
  tlsError: string | undefined;
  readonly closedP: Promise<void>;
  private readonly connected: Promise<void>;
  private readonly reader = new FrameReader(
    1 << 30,
    (p) => (this.frames.push(Buffer.from(p)), true),
    () => {},
  );

  constructor(port: number, opts: { tls?: { ca: string; pem?: Pem } } = {}) {
    if (opts.tls) {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        ca: opts.tls.ca,
        ...(opts.tls.pem ? { cert: opts.tls.pem.cert, key: opts.tls.pem.key } : {}),
        checkServerIdentity: () => undefined,
      });
      this.socket = s;
      this.connected = new Promise((r) => s.once('secureConnect', () => r()));
    } else {
      this.socket = net.connect({ host: '127.0.0.1', port });
      this.connected = new Promise((r) => this.socket.once('connect', () => r()));
    }
    this.socket.on('data', (c: Buffer) => this.reader.push(c));
    this.socket.on('error', (e) => (this.tlsError = e.message));
    this.closedP = new Promise((r) => this.socket.on('close', () => ((this.closed = true), r())));
  }

  /** Resolves once connected (TLS: handshake done), or false when the connection closed first. */
  async ready(): Promise<boolean> {
    return Promise.race([this.connected.then(() => true), this.closedP.then(() => false)]);
  }

  write(b: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  /** hello (claiming `ids`) -> welcome (-> auth with `secret`); returns the welcome, or undefined if closed. */
  async handshake(ids: string[], to: string, secret?: string): Promise<Welcome | undefined> {
    if (!(await this.ready())) return undefined;
    const nonce = randomBytes(16);
    this.write(frames([encodeHello({ minVersion: 1, maxVersion: 1, ids, to, nonce })]));
    const end = Date.now() + 10_000;
    while (this.frames.length === 0) {
      if (this.closed) return undefined;
      if (Date.now() > end) throw new Error('no welcome');
      await new Promise((r) => setTimeout(r, 2));
    }
    const w = decodeWelcome(this.frames.shift()!);
    if (secret && w.nonce)
      this.write(
        frames([encodeAuth(handshakeProof(Buffer.from(secret), 'decree/dialler', nonce, w.nonce, ids, w.ids))]),
      );
    return w;
  }

  send(...msgs: Message[]): void {
    this.write(frames(msgs.map((m) => encodeMessage(m))));
  }

  destroy(): Promise<void> {
    this.socket.destroy();
    return this.closedP;
  }
}

export const RING = 'ring-s';
const enc = (s: string) => new TextEncoder().encode(s);
export const value = (tag: string, origin: ReplicaId): SlotValue => ({
  k: 'batch',
  origin,
  inc: 1,
  firstId: 1,
  cmds: [enc(tag)],
});

export const acceptMsg = (
  from: ReplicaId,
  to: ReplicaId,
  round: number,
  slot: number,
  leader: ReplicaId = from,
): MessageOf<'accept'> => ({
  type: 'accept',
  ring: RING,
  from,
  to,
  ballot: { round, leader },
  slot,
  value: value(`${from}-${round}-${slot}`, leader),
  decidedUpTo: 0,
});

/** A real acceptor (XState machine, memory store) of replica `self`, on a Bus over `transport`. */
export function busAcceptor(self: ReplicaId, transport: ConstructorParameters<typeof Bus>[1]) {
  const bus = new Bus(realEnv(), transport);
  const actor = createActor(acceptorMachine, {
    input: {
      ring: RING,
      self,
      store: new MemoryStore(),
      recovered: emptyRecoveredState(),
      send: (m: Message) => bus.send(m),
    },
  });
  actor.start();
  const seen: Message[] = [];
  bus.register(RING, self, 'acceptor', (m) => {
    seen.push(m);
    actor.send(m as never);
  });
  return { bus, actor, seen, promised: () => actor.getSnapshot().context.promised, stop: () => actor.stop() };
}

/** A proposer stand-in on a Bus: records what the acceptors answer. */
export function busProposer(self: ReplicaId, transport: ConstructorParameters<typeof Bus>[1]) {
  const bus = new Bus(realEnv(), transport);
  const got: Message[] = [];
  bus.register(RING, self, 'proposer', (m) => got.push(m));
  return { bus, got };
}
