/**
 * Micro-benchmark: messages/s and MB/s of TcpTransport over loopback, for ~100-byte and ~6 KB
 * messages (a HeartbeatAck with a payload; an Accept carrying one command). The sender keeps a
 * window of messages in flight (the receiver acknowledges every `ackEvery` messages with a small
 * message), so nothing is dropped and the figure is the sustained rate.
 *
 *   node --conditions=source --import tsx apps/bench/src/micro/transport-tcp.ts          # both ends in one process
 *   node --conditions=source --import tsx apps/bench/src/micro/transport-tcp.ts --split  # receiver in a child process
 *   options: --seconds=N (per size, default 3)  --sizes=100,6144
 *
 * CPU µs/msg (process.cpuUsage over the messages sent) is the figure to compare on a loaded machine;
 * messages/s and MB/s are wall-clock rates and fall with the load.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeMessage, type Message } from '@decree/protocol';
import { createTcpTransport, type TcpTransport } from '@decree/transport-tcp';

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k!, v ?? 'true'] as const;
  }),
);
const seconds = Number(args.get('seconds') ?? 3);
const sizes = (args.get('sizes') ?? '100,6144').split(',').map(Number);
const ackEvery = 256;

/**
 * A message whose encoding is `size` bytes: an Accept carrying one command (the hot large
 * message), or below 200 bytes a HeartbeatAck with a payload (an Accept's header alone is ~140).
 */
function messageOfSize(size: number, ring: string): Message {
  const mk = (n: number): Message =>
    size < 200
      ? {
          type: 'heartbeat-ack',
          ring,
          from: 'S',
          to: 'R',
          ballot: { round: 7, leader: 'S' },
          appliedUpTo: 123456,
          payload: new Uint8Array(n).fill(0x61),
        }
      : {
          type: 'accept',
          ring,
          from: 'S',
          to: 'R',
          ballot: { round: 7, leader: 'S' },
          slot: 123456,
          decidedUpTo: 123455,
          value: { k: 'batch', origin: 'S', inc: 1, firstId: 1000, cmds: [new Uint8Array(n).fill(0x61)] },
        };
  let n = Math.max(0, size - encodeMessage(mk(0)).length);
  while (n > 0 && encodeMessage(mk(n)).length > size) n--;
  return mk(n);
}

const sleep = () => new Promise<void>((r) => setImmediate(r));

/** The receiving end: acknowledges every `ackEvery` messages of a ring with a 'progress' message. */
async function receiver(port: number, senderPort: number): Promise<TcpTransport> {
  const t = await createTcpTransport({
    self: 'R',
    listen: { host: '127.0.0.1', port },
    peers: { S: { host: '127.0.0.1', port: senderPort } },
    logger: false,
  });
  const counts = new Map<string, number>();
  t.setReceiver((m: Message) => {
    if (m.type !== 'accept' && m.type !== 'heartbeat-ack') return;
    const n = (counts.get(m.ring) ?? 0) + 1;
    counts.set(m.ring, n);
    if (n % ackEvery === 0)
      t.send({ type: 'progress', ring: m.ring, from: 'R', to: 'S', executedUpTo: n, chosenUpTo: n });
  });
  return t;
}

async function main(): Promise<void> {
  if (args.get('role') === 'receiver') {
    const t = await receiver(Number(args.get('port')), Number(args.get('sender-port')));
    process.send?.({ ready: t.address()!.port });
    process.on('disconnect', () => void t.close().then(() => process.exit(0)));
    return;
  }
  const split = args.has('split');
  const acked = new Map<string, number>();
  const sender = await createTcpTransport({
    self: 'S',
    listen: { host: '127.0.0.1', port: 0 },
    peers: (id) => (id === 'R' ? { host: '127.0.0.1', port: rPort } : undefined),
    logger: false,
    maxQueuedBytes: 64 * 1024 * 1024,
    maxQueuedMessages: 1 << 20,
  });
  sender.setReceiver((m) => {
    if (m.type === 'progress') acked.set(m.ring, Math.max(acked.get(m.ring) ?? 0, m.executedUpTo));
  });
  const sPort = sender.address()!.port;
  let rPort = 0;
  let local: TcpTransport | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  if (split) {
    child = spawn(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        '--role=receiver',
        '--port=0',
        `--sender-port=${sPort}`,
      ],
      {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    rPort = await new Promise<number>((resolve, reject) => {
      child!.once('message', (m: unknown) => resolve((m as { ready: number }).ready));
      child!.once('exit', (c) => reject(new Error(`receiver exited ${c}`)));
    });
  } else {
    local = await receiver(0, sPort);
    rPort = local.address()!.port;
  }
  await sender.whenConnected('R');

  console.log(
    `transport-tcp loopback benchmark: ${split ? 'receiver in a child process' : 'both ends in one process'}, ` +
      `node ${process.version}, ${seconds} s per size`,
  );
  console.log(
    `| message bytes | messages/s | MB/s | CPU µs/msg (${split ? 'sender process' : 'both ends'}) ` +
      `| socket writes | frames/write | drops |`,
  );
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const size of sizes) {
    const ring = `bench-${size}`;
    const msg = messageOfSize(size, ring);
    const bytes = encodeMessage(msg).length;
    const window = Math.max(ackEvery * 4, Math.floor((4 * 1024 * 1024) / bytes));
    const before = sender.stats();
    let sent = 0;
    // warm-up: 0.5 s, not measured
    const warmEnd = performance.now() + 500;
    while (performance.now() < warmEnd) {
      while (sent - (acked.get(ring) ?? 0) < window) {
        sender.send(msg);
        sent++;
        if (sent % 64 === 0) break;
      }
      await sleep();
    }
    const s0 = sent;
    const a0 = acked.get(ring) ?? 0;
    const w0 = sender.stats().socketWrites;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const end = t0 + seconds * 1000;
    while (performance.now() < end) {
      let burst = 0;
      while (sent - (acked.get(ring) ?? 0) < window && burst < 4096) {
        sender.send(msg);
        sent++;
        burst++;
      }
      await sleep();
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const delivered = (acked.get(ring) ?? 0) - a0;
    const writes = sender.stats().socketWrites - w0;
    const perSec = (delivered / ms) * 1000;
    const mbs = (perSec * bytes) / 1e6;
    const after = sender.stats();
    console.log(
      `| ${bytes} | ${Math.round(perSec).toLocaleString('en-US')} | ${mbs.toFixed(1)} | ` +
        `${((cpu.user + cpu.system) / Math.max(1, sent - s0)).toFixed(2)} | ${writes} | ` +
        `${((sent - s0) / Math.max(1, writes)).toFixed(1)} | ${after.drops - before.drops} |`,
    );
    // let the window drain before the next size
    const drainEnd = Date.now() + 10_000;
    while ((acked.get(ring) ?? 0) + ackEvery <= sent && Date.now() < drainEnd)
      await new Promise((r) => setTimeout(r, 5));
  }
  await sender.close();
  await local?.close();
  if (child) {
    child.disconnect();
    await new Promise((r) => child!.once('exit', r));
  }
}

await main();
