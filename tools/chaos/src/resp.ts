import net from 'node:net';

/** An error reply (`-ERR ...`, `-TRYAGAIN ...`). */
export class RespError extends Error {
  override name = 'RespError';
}
export type RespValue = string | number | null | RespError | RespValue[];

/** Parses one RESP2 value from buf at off; undefined when incomplete. */
export function parseResp(buf: Buffer, off: number): { v: RespValue; end: number } | undefined {
  if (off >= buf.length) return undefined;
  const nl = buf.indexOf('\r\n', off);
  if (nl < 0) return undefined;
  const t = String.fromCharCode(buf[off]!);
  const line = buf.toString('utf8', off + 1, nl);
  switch (t) {
    case '+':
      return { v: line, end: nl + 2 };
    case '-':
      return { v: new RespError(line), end: nl + 2 };
    case ':':
      return { v: Number(line), end: nl + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { v: null, end: nl + 2 };
      if (buf.length < nl + 2 + n + 2) return undefined;
      return { v: buf.toString('utf8', nl + 2, nl + 2 + n), end: nl + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { v: null, end: nl + 2 };
      const items: RespValue[] = [];
      let p = nl + 2;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (!r) return undefined;
        items.push(r.v);
        p = r.end;
      }
      return { v: items, end: p };
    }
    default:
      throw new Error(`bad RESP type byte ${JSON.stringify(t)}`);
  }
}

/**
 * One RESP connection; replies come back in order. A command with no reply within its timeout, or
 * whose connection breaks, rejects (its outcome is unknown) and the connection is closed.
 */
export class RespConnection {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve(v: RespValue): void; reject(e: Error): void; timer: NodeJS.Timeout }[] = [];
  private dead: Error | undefined;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      for (;;) {
        let r;
        try {
          r = parseResp(this.buf, 0);
        } catch (e) {
          this.fail(e as Error);
          sock.destroy();
          return;
        }
        if (!r) break;
        this.buf = this.buf.subarray(r.end);
        const w = this.waiting.shift();
        if (!w) continue;
        clearTimeout(w.timer);
        w.resolve(r.v);
      }
    });
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('connection closed')));
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = 2000): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        s.setNoDelay(true);
        resolve(new RespConnection(s));
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

  call(args: readonly (string | number)[], timeoutMs = 10_000): Promise<RespValue> {
    if (this.dead) return Promise.reject(this.dead);
    const parts = args.map(String);
    this.sock.write(`*${parts.length}\r\n${parts.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const e = new Error(`no reply to ${parts[0]} within ${timeoutMs} ms`);
        this.fail(e);
        this.sock.destroy();
      }, timeoutMs);
      this.waiting.push({ resolve, reject, timer });
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** One command on a fresh connection (status queries). */
export async function respOnce(port: number, args: readonly (string | number)[], timeoutMs = 2000): Promise<RespValue> {
  const c = await RespConnection.connect(port, '127.0.0.1', timeoutMs);
  try {
    return await c.call(args, timeoutMs);
  } finally {
    c.close();
  }
}
