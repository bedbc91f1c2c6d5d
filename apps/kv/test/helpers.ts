/** Shared by the in-process server tests: a backend over a LocalCluster replica, a raw RESP connection. */
import net from 'node:net';
import { KvMachine } from '@decree/kv-machine';
import type { Replica } from '@decree/replica';
import { RespDecoder, RespErrorReply, encodeCommand, type KvBackend } from '../src/index.ts';

export function backendFor(r: Replica, sm: KvMachine, counters: { readIndex: number; execute: number }): KvBackend {
  return {
    execute: (cmds) => {
      counters.execute += cmds.length;
      return r.execute(cmds);
    },
    executeEach: (cmds) => {
      counters.execute += cmds.length;
      return r.executeEach(cmds);
    },
    readLocal: (c) => sm.query(c),
    status: () => ({ ...r.status() }),
    isLeader: () => r.isLeader(),
    readIndex: () => {
      counters.readIndex++;
      return r.readIndex();
    },
    waitForSlot: (s, t) => r.waitForSlot(s, t),
    writeToken: () => Math.max(r.executedSlot(), r.highestChosenSlot()),
  };
}

/** A raw RESP connection (RESP2 or RESP3 replies): send bytes, read n replies (with a deadline). */
export class Raw {
  private dec = new RespDecoder();
  private got: unknown[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.got.push(...this.dec.feed(d));
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('error', () => {});
  }
  static connect(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }
  send(b: Buffer | string): void {
    this.sock.write(b);
  }
  cmd(...args: (string | Buffer)[]): void {
    this.sock.write(encodeCommand(args));
  }
  async replies(n: number, ms = 10_000): Promise<unknown[]> {
    const end = Date.now() + ms;
    while (this.got.length < n && !this.closed && Date.now() < end)
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    return this.got.splice(0, n);
  }
  close(): void {
    this.sock.destroy();
  }
}
export const msg = (v: unknown) => (v instanceof RespErrorReply || v instanceof Error ? v.message : String(v));
