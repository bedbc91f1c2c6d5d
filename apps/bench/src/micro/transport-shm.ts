/**
 * Micro-benchmark: the shm ring transport vs the TCP transport on loopback, for ~100-byte and ~6 KB
 * messages (a HeartbeatAck with a payload; an Accept carrying one command).
 *  - throughput: the sender keeps a window in flight; the receiver acknowledges every 256 messages;
 *    messages/s, MB/s and the sender's CPU µs per message.
 *  - latency: ping-pong, one message in flight; round-trip p50 / p99 in µs.
 *
 *   node --conditions=source --import tsx apps/bench/src/micro/transport-shm.ts  # receiver in a child process
 *   options: --local (both ends in one process)  --seconds=N (per size, default 2)  --sizes=100,6144
 *            --pings=N (default 3000)  --kinds=shm,tcp
 *
 * Wall-clock figures fall with the machine's load: compare shm and tcp from the same run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Transport } from '@decree/bus';
import { encodeMessage, type Message } from '@decree/protocol';
import { createTcpTransport } from '@decree/transport-tcp';
import { createShmTransport } from '@decree/transport-shm';

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k!, v ?? 'true'] as const;
  }),
);
const seconds = Number(args.get('seconds') ?? 2);
const sizes = (args.get('sizes') ?? '100,6144').split(',').map(Number);
const kinds = (args.get('kinds') ?? 'shm,tcp').split(',') as ('shm' | 'tcp')[];
const pings = Number(args.get('pings') ?? 3000);
const ackEvery = 256;

function messageOfSize(size: number, ring: string, from = 'S', to = 'R'): Message {
  const mk = (n: number): Message =>
    size < 200
      ? {
          type: 'heartbeat-ack',
          ring,
          from,
          to,
          ballot: { round: 7, leader: from },
          appliedUpTo: 123456,
          payload: new Uint8Array(n).fill(0x61),
        }
      : {
          type: 'accept',
          ring,
          from,
          to,
          ballot: { round: 7, leader: from },
          slot: 123456,
          decidedUpTo: 123455,
          value: { k: 'batch', origin: from, inc: 1, firstId: 1000, cmds: [new Uint8Array(n).fill(0x61)] },
        };
  let n = Math.max(0, size - encodeMessage(mk(0)).length);
  while (n > 0 && encodeMessage(mk(n)).length > size) n--;
  return mk(n);
}

interface Opts {
  kind: 'shm' | 'tcp';
  dir: string;
  cluster: string;
  sPort: number;
  rPort: number;
}

async function makeTransport(o: Opts, self: 'S' | 'R'): Promise<Transport> {
  if (o.kind === 'shm')
    return createShmTransport({
      self,
      peers: ['S', 'R'],
      cluster: o.cluster,
      dir: o.dir,
      capacity: 8 << 20,
      maxQueuedBytes: 256 << 20,
      maxQueuedMessages: 1 << 20,
      logger: false,
    });
  return createTcpTransport({
    self,
    listen: { host: '127.0.0.1', port: self === 'S' ? o.sPort : o.rPort },
    peers: { S: { host: '127.0.0.1', port: o.sPort }, R: { host: '127.0.0.1', port: o.rPort } },
    maxQueuedBytes: 256 << 20,
    maxQueuedMessages: 1 << 20,
    logger: false,
  });
}

/** R: acknowledges every `ackEvery` messages of a ring; echoes pings (ring 'lat-*') back at once. */
async function receiver(o: Opts): Promise<Transport> {
  const t = await makeTransport(o, 'R');
  const counts = new Map<string, number>();
  t.setReceiver((m: Message) => {
    if (m.ring.startsWith('lat-')) {
      t.send({ ...m, from: 'R', to: 'S' } as Message);
      return;
    }
    const n = (counts.get(m.ring) ?? 0) + 1;
    counts.set(m.ring, n);
    if (n % ackEvery === 0)
      t.send({ type: 'progress', ring: m.ring, from: 'R', to: 'S', executedUpTo: n, chosenUpTo: n });
  });
  return t;
}

const turn = () => new Promise<void>((r) => setImmediate(r));

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function runKind(kind: 'shm' | 'tcp', local: boolean, dir: string): Promise<string[]> {
  const o: Opts = { kind, dir, cluster: `bench${process.pid}`, sPort: await freePort(), rPort: await freePort() };
  let child: ChildProcess | undefined;
  let rLocal: Transport | undefined;
  if (local) rLocal = await receiver(o);
  else {
    child = spawn(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        '--role=receiver',
        `--opts=${JSON.stringify(o)}`,
      ],
      {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    await new Promise<void>((resolve, reject) => {
      child!.once('message', () => resolve());
      child!.once('exit', (c) => reject(new Error(`receiver exited ${c}`)));
    });
  }
  const sender = await makeTransport(o, 'S');
  const acked = new Map<string, number>();
  let pong: (() => void) | undefined;
  sender.setReceiver((m) => {
    if (m.type === 'progress') acked.set(m.ring, Math.max(acked.get(m.ring) ?? 0, m.executedUpTo));
    else if (m.ring.startsWith('lat-')) pong?.();
  });
  const until = Date.now() + 20_000;
  while (!sender.isConnected('R') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  const rows: string[] = [];
  for (const size of sizes) {
    // ---- throughput
    const ring = `tp-${size}`;
    const msg = messageOfSize(size, ring);
    const bytes = encodeMessage(msg).length;
    const window = Math.max(ackEvery * 4, Math.floor((2 << 20) / bytes));
    let sent = 0;
    const pump = async (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end) {
        let burst = 0;
        while (sent - (acked.get(ring) ?? 0) < window && burst < 4096) {
          sender.send(msg);
          sent++;
          burst++;
        }
        await turn();
      }
    };
    await pump(300); // warm-up
    const s0 = sent;
    const a0 = acked.get(ring) ?? 0;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await pump(seconds * 1000);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const delivered = (acked.get(ring) ?? 0) - a0;
    const perSec = (delivered / ms) * 1000;
    const drainEnd = Date.now() + 10_000;
    while ((acked.get(ring) ?? 0) + ackEvery <= sent && Date.now() < drainEnd)
      await new Promise((r) => setTimeout(r, 5));
    // ---- latency (ping-pong)
    const ping = messageOfSize(size, `lat-${size}`);
    const rtts: number[] = [];
    for (let i = 0; i < pings + 100; i++) {
      const t = performance.now();
      await new Promise<void>((resolve) => {
        pong = resolve;
        sender.send(ping);
      });
      if (i >= 100) rtts.push((performance.now() - t) * 1000);
    }
    rtts.sort((a, b) => a - b);
    const q = (p: number) => rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))]!.toFixed(0);
    rows.push(
      `| ${kind} | ${bytes} | ${Math.round(perSec).toLocaleString('en-US')} | ` +
        `${((perSec * bytes) / 1e6).toFixed(1)} | ` +
        `${((cpu.user + cpu.system) / Math.max(1, sent - s0)).toFixed(2)} | ${q(0.5)} | ${q(0.99)} |`,
    );
  }
  await sender.close();
  await rLocal?.close();
  if (child) {
    child.disconnect();
    await new Promise((r) => child!.once('exit', r));
  }
  return rows;
}

async function main(): Promise<void> {
  if (args.get('role') === 'receiver') {
    const t = await receiver(JSON.parse(args.get('opts')!) as Opts);
    process.send?.({ ready: true });
    process.on('disconnect', () => void t.close().then(() => process.exit(0)));
    return;
  }
  const local = args.has('local');
  const dir = mkdtempSync(path.join(args.get('dir') ?? '/dev/shm', 'decree-bench-'));
  try {
    console.log(
      `transport-shm vs transport-tcp: ${local ? 'both ends in one process' : 'receiver in a child process'}, ` +
        `node ${process.version}, ${os.cpus().length} cores, ` +
        `load ${os
          .loadavg()
          .map((x) => x.toFixed(1))
          .join(' ')}, ${seconds} s per size, ${pings} pings`,
    );
    console.log('| transport | message bytes | messages/s | MB/s | sender CPU µs/msg | RTT p50 µs | RTT p99 µs |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const kind of kinds) for (const r of await runKind(kind, local, dir)) console.log(r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
