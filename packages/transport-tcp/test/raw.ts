import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { FrameReader, decodeWelcome, encodeHello, frames, type Welcome } from '../src/index.ts';

/** A hand-driven client socket speaking (or not) the transport's wire protocol. */
export class RawClient {
  readonly socket: net.Socket;
  readonly frames: Buffer[] = [];
  closed = false;
  readonly closedP: Promise<void>;
  private readonly reader = new FrameReader(
    1 << 30,
    (p) => (this.frames.push(Buffer.from(p)), true),
    () => {},
  );

  constructor(port: number, host = '127.0.0.1') {
    this.socket = net.connect({ port, host });
    this.socket.on('data', (c: Buffer) => this.reader.push(c));
    this.socket.on('error', () => {});
    this.closedP = new Promise((r) => this.socket.on('close', () => ((this.closed = true), r())));
  }

  ready(): Promise<void> {
    return new Promise((r) => (this.socket.connecting ? this.socket.once('connect', () => r()) : r()));
  }

  write(b: Uint8Array): void {
    this.socket.write(b);
  }

  /** Sends a hello and waits for the welcome. */
  async handshake(ids: string[], to: string, min = 1, max = 1): Promise<Welcome> {
    await this.ready();
    this.write(frames([encodeHello({ minVersion: min, maxVersion: max, ids, to, nonce: randomBytes(16) })]));
    const end = Date.now() + 10_000;
    while (this.frames.length === 0) {
      if (Date.now() > end || this.closed) throw new Error('no welcome');
      await new Promise((r) => setTimeout(r, 2));
    }
    return decodeWelcome(this.frames.shift()!);
  }

  destroy(): Promise<void> {
    this.socket.destroy();
    return this.closedP;
  }
}
