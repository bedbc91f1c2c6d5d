/**
 * The floor of a replicated SET on this machine (issue #19): three Node processes that do only what
 * any 3-way replicated log must do with the same bytes, and nothing else — no consensus, no state
 * machine, no objects per command.
 *
 *   leader     reads RESP from the clients, cuts the complete commands of each turn into one batch,
 *              writes it to its log (O_DSYNC: durable when the write returns) and sends it to both
 *              followers; once its own write and ONE follower's ack are in (a majority), it answers
 *              +OK for each command
 *   follower   writes each batch to its log (O_DSYNC) and acks it
 *
 * It is the lower bound of Decree's 3-process TCP + WAL rows under the same redis-benchmark load:
 *
 *   node --conditions=source --import tsx apps/bench/src/floor.ts [N=1000000]
 *
 * prints SET/s and the CPU µs per SET of each process (user + system, /proc/<pid>/stat), and the
 * unpipelined p50/p99.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync, write } from 'node:fs';
import { type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const OK = Buffer.from('+OK\r\n');
const OKS = Buffer.alloc(OK.length * 4096, '+OK\r\n');

/** Counts the complete RESP commands (arrays of bulk strings) at the start of `b`; returns [count, bytes]. */
export function completeCommands(b: Buffer): [number, number] {
  let i = 0;
  let n = 0;
  const len = b.length;
  const int = (at: number): [number, number] => {
    let v = 0;
    let j = at;
    while (j < len && b[j] !== 13) v = v * 10 + (b[j++]! - 48);
    return j + 1 < len ? [v, j + 2] : [-1, -1];
  };
  while (i < len) {
    if (b[i] !== 42) throw new Error(`floor: not a RESP array at byte ${i}`); // '*'
    let [args, at] = int(i + 1);
    if (args < 0) break;
    let ok = true;
    while (args-- > 0) {
      if (at >= len) {
        ok = false;
        break;
      }
      const [bytes, data] = int(at + 1); // after '$'
      if (bytes < 0 || data + bytes + 2 > len) {
        ok = false;
        break;
      }
      at = data + bytes + 2;
    }
    if (!ok) break;
    n++;
    i = at;
  }
  return [n, i];
}

/** Frames: [u32 length][u32 seq] payload. */
function frame(seq: number, payload: Buffer): Buffer {
  const h = Buffer.allocUnsafe(8);
  h.writeUInt32LE(payload.length, 0);
  h.writeUInt32LE(seq, 4);
  return Buffer.concat([h, payload]);
}

/**
 * An O_DSYNC append-only log with one write in flight: what arrives meanwhile goes out in the next
 * write (group commit), in order; each callback runs once its bytes are durable.
 */
class SerialLog {
  private readonly fd: number;
  private writing = false;
  private queued: Buffer[] = [];
  private waiting: (() => void)[] = [];
  constructor(path: string) {
    this.fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC);
  }
  append(data: Buffer, done: () => void): void {
    this.queued.push(data);
    this.waiting.push(done);
    if (!this.writing) this.next();
  }
  private next(): void {
    if (this.queued.length === 0) return;
    const data = this.queued.length === 1 ? this.queued[0]! : Buffer.concat(this.queued);
    const cbs = this.waiting;
    this.queued = [];
    this.waiting = [];
    this.writing = true;
    write(this.fd, data, (err) => {
      if (err) throw err;
      this.writing = false;
      for (const cb of cbs) cb();
      this.next();
    });
  }
}

function follower(port: number, dir: string): void {
  const log = new SerialLog(join(dir, `follower-${port}.log`));
  createServer((s) => {
    s.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      // every complete frame of this read in one write (group), then one ack for the highest seq
      let at = 0;
      let seq = -1;
      const parts: Buffer[] = [];
      while (buf.length - at >= 8) {
        const n = buf.readUInt32LE(at);
        if (buf.length - at < 8 + n) break;
        seq = buf.readUInt32LE(at + 4);
        parts.push(buf.subarray(at + 8, at + 8 + n));
        at += 8 + n;
      }
      buf = buf.subarray(at);
      if (seq < 0) return;
      const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      log.append(data, () => {
        const a = Buffer.allocUnsafe(4);
        a.writeUInt32LE(seq, 0);
        s.write(a);
      });
    });
  }).listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}

function leader(port: number, followerPorts: number[], dir: string): void {
  const log = new SerialLog(join(dir, 'leader.log'));
  interface Pending {
    seq: number;
    replies: { s: Socket; n: number }[];
    local: boolean;
    acks: number;
  }
  const pending = new Map<number, Pending>();
  let seq = 0;
  let turn: { chunks: Buffer[]; replies: { s: Socket; n: number }[] } | undefined;
  const followers: Socket[] = followerPorts.map((p) => {
    const f = connect(p, '127.0.0.1');
    f.setNoDelay(true);
    let acked = 0;
    let rest: Buffer = Buffer.alloc(0);
    f.on('data', (d: Buffer) => {
      rest = rest.length ? Buffer.concat([rest, d]) : d;
      let hi = acked;
      let at = 0;
      for (; rest.length - at >= 4; at += 4) hi = rest.readUInt32LE(at);
      rest = rest.subarray(at);
      // acks are cumulative: every batch up to hi is on that follower's disk
      for (let q = acked + 1; q <= hi; q++) {
        const p = pending.get(q);
        if (p) {
          p.acks++;
          settle(p);
        }
      }
      acked = hi;
    });
    return f;
  });
  const settle = (p: Pending) => {
    if (!p.local || p.acks < 1) return;
    pending.delete(p.seq);
    for (const r of p.replies) {
      let n = r.n;
      while (n > 0) {
        const k = Math.min(n, 4096);
        r.s.write(k === 4096 ? OKS : OKS.subarray(0, k * OK.length));
        n -= k;
      }
    }
  };
  const flush = () => {
    const t = turn!;
    turn = undefined;
    const data = t.chunks.length === 1 ? t.chunks[0]! : Buffer.concat(t.chunks);
    const p: Pending = { seq: ++seq, replies: t.replies, local: false, acks: 0 };
    pending.set(p.seq, p);
    const f = frame(p.seq, data);
    for (const s of followers) s.write(f);
    log.append(data, () => {
      p.local = true;
      settle(p);
    });
  };
  createServer((s) => {
    s.setNoDelay(true);
    let rest: Buffer = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      const b = rest.length ? Buffer.concat([rest, d]) : d;
      const [n, bytes] = completeCommands(b);
      rest = b.subarray(bytes);
      if (n === 0) return;
      if (!turn) {
        turn = { chunks: [], replies: [] };
        setImmediate(flush);
      }
      turn.chunks.push(b.subarray(0, bytes));
      turn.replies.push({ s, n });
    });
  }).listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--role') {
  const [, , , role, portArg, dir, ...rest] = process.argv;
  if (role === 'follower') follower(Number(portArg), dir!);
  else leader(Number(portArg), rest.map(Number), dir!);
} else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { distinctFreePorts, procCpuSeconds, redisBenchmark, LOADS } = await import('./cluster.ts');
  const n = Number(process.argv[2] ?? 1_000_000);
  const dir = mkdtempSync(join(tmpdir(), 'decree-floor-'));
  const self = fileURLToPath(import.meta.url);
  const ports = await distinctFreePorts(3);
  const kids: ChildProcess[] = [];
  const start = (args: string[]) =>
    new Promise<ChildProcess>((res, rej) => {
      const c = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', self, '--role', ...args], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      kids.push(c);
      c.stdout!.once('data', () => res(c));
      c.once('exit', (code) => rej(new Error(`floor ${args[0]} exited ${code}`)));
    });
  try {
    const f1 = await start(['follower', String(ports[1]), dir]);
    const f2 = await start(['follower', String(ports[2]), dir]);
    const l = await start(['leader', String(ports[0]), dir, String(ports[1]), String(ports[2])]);
    const procs: [string, ChildProcess][] = [
      ['leader', l],
      ['follower 1', f1],
      ['follower 2', f2],
    ];
    const cpu0 = procs.map(([, c]) => procCpuSeconds(c.pid));
    const [row] = await redisBenchmark(ports[0]!, LOADS.setPipelined(n), 'floor, SET -P 64 -c 50');
    const cpu1 = procs.map(([, c]) => procCpuSeconds(c.pid));
    console.log(`floor (3 processes, TCP, O_DSYNC log): ${Math.round(row!.opsPerSec)} SET/s, -P 64 -c 50, n=${n}`);
    let total = 0;
    procs.forEach(([name], i) => {
      const us = ((cpu1[i]! - cpu0[i]!) / n) * 1e6;
      total += us;
      console.log(`  ${name}: ${us.toFixed(2)} CPU µs/SET`);
    });
    console.log(`  all three: ${total.toFixed(2)} CPU µs/SET`);
    const n1 = 10_000;
    const cpu2 = procs.map(([, c]) => procCpuSeconds(c.pid));
    const [one] = await redisBenchmark(ports[0]!, LOADS.setUnpipelined(n1), 'floor, SET -P 1 -c 1');
    const cpu3 = procs.map(([, c]) => procCpuSeconds(c.pid));
    const cpu1Us = procs.map(([name], i) => `${name} ${(((cpu3[i]! - cpu2[i]!) / n1) * 1e6).toFixed(1)}`);
    console.log(`  unpipelined (1 client): p50 ${one!.p50ms} ms, p99 ${one!.p99ms} ms`);
    console.log(`  unpipelined CPU µs/SET: ${cpu1Us.join(', ')}`);
  } finally {
    for (const k of kids) k.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
