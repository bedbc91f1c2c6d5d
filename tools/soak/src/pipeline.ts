import net from 'node:net';
import { parseResp, RespError, type RespValue } from '@decree/chaos';

/** One command as a RESP array of bulk strings; Buffer arguments are not copied until the frame is joined. */
export function encodeCommand(args: readonly (string | Buffer)[], out: Buffer[]): void {
  out.push(Buffer.from(`*${args.length}\r\n`));
  for (const a of args) {
    if (typeof a === 'string') out.push(Buffer.from(`$${Buffer.byteLength(a)}\r\n${a}\r\n`));
    else out.push(Buffer.from(`$${a.length}\r\n`), a, CRLF);
  }
}
const CRLF = Buffer.from('\r\n');

export interface PipelineResult {
  /** replies received, in order (fewer than sent when `broken`) */
  replies: RespValue[];
  /** why the rest got no reply: connection lost, or no progress for stallMs */
  broken?: 'timeout' | 'connection-lost';
  brokenMessage?: string;
}

/**
 * A RESP connection that sends a whole pipeline at once and collects the replies in order, calling
 * `onReply` as each arrives. It never retries. When the connection breaks, or no reply arrives for
 * `stallMs`, the pipeline resolves with the replies so far and the connection is closed.
 */
export class PipelineConnection {
  private buf: Buffer = Buffer.alloc(0);
  private dead: Error | undefined;
  private cur:
    | {
        left: number;
        replies: RespValue[];
        onReply: (i: number, v: RespValue) => void;
        done: (r: PipelineResult) => void;
        stallMs: number;
        timer: NodeJS.Timeout;
      }
    | undefined;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', (e) => this.fail(e, 'connection-lost'));
    sock.on('close', () => this.fail(new Error('connection closed'), 'connection-lost'));
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = 2000): Promise<PipelineConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        s.setNoDelay(true);
        resolve(new PipelineConnection(s));
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  get closed(): boolean {
    return this.dead !== undefined;
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    const c = this.cur;
    for (;;) {
      let r;
      try {
        r = parseResp(this.buf, 0);
      } catch (e) {
        this.fail(e as Error, 'connection-lost');
        this.sock.destroy();
        return;
      }
      if (!r) break;
      this.buf = this.buf.subarray(r.end);
      if (!c) continue; // a reply nobody waits for (cannot happen: one pipeline at a time)
      const i = c.replies.length;
      c.replies.push(r.v);
      c.onReply(i, r.v);
      if (--c.left === 0) {
        clearTimeout(c.timer);
        this.cur = undefined;
        c.done({ replies: c.replies });
        return;
      }
    }
    if (c && this.cur === c) c.timer.refresh();
  }

  private fail(e: Error, kind: 'timeout' | 'connection-lost'): void {
    this.dead ??= e;
    const c = this.cur;
    if (!c) return;
    this.cur = undefined;
    clearTimeout(c.timer);
    c.done({ replies: c.replies, broken: kind, brokenMessage: e.message });
  }

  /** Sends `count` commands encoded in `frame`; resolves when all are answered or the connection is given up. */
  send(
    frame: Buffer,
    count: number,
    stallMs: number,
    onReply: (i: number, v: RespValue) => void,
  ): Promise<PipelineResult> {
    if (this.dead) {
      return Promise.resolve({ replies: [], broken: 'connection-lost', brokenMessage: this.dead.message });
    }
    if (this.cur) throw new Error('one pipeline at a time');
    return new Promise((done) => {
      const timer = setTimeout(() => {
        this.fail(new Error(`no reply for ${stallMs} ms`), 'timeout');
        this.sock.destroy();
      }, stallMs);
      this.cur = { left: count, replies: [], onReply, done, stallMs, timer };
      this.sock.write(frame);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

export { RespError };
