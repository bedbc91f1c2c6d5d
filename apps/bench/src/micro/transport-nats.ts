// Micro-benchmark: messages/s through the NATS transport (transport A -> nats-server -> transport B),
// for ~100-byte and ~6 KB encoded messages.
//
//   node --conditions=source --import tsx apps/bench/src/micro/transport-nats.ts [--seconds 3] [--window 2000]
//
// A sliding window keeps at most `window` messages in flight (sent, not yet received), so the
// figure is sustained end-to-end throughput with nothing dropped; a second pass measures how fast
// send() alone returns (fire-and-forget; messages over maxPendingBytes are dropped and counted), and a
// baseline publishes the same pre-encoded bytes with the bare client (no codec, no transport).
import { connect } from 'nats';
import { encodeMessage, type Message } from '@decree/protocol';
import { createNatsTransport } from '@decree/transport-nats';
import { startNatsServer } from '@decree/transport-nats/testing';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const seconds = arg('seconds', 3);
const window = arg('window', 2000);

/**
 * A message whose MessagePack encoding is about `size` bytes: a heartbeat (cookie padded) for
 * small sizes, an accept carrying one command for large ones.
 */
function messageOfSize(size: number): Message {
  const small = size < 1000;
  const make = (n: number): Message =>
    small
      ? {
          type: 'heartbeat',
          ring: 'ring0',
          from: 'A',
          to: 'B',
          ballot: { round: 7, leader: 'A' },
          decidedUpTo: 123450,
          cookie: new Uint8Array(n).fill(7),
        }
      : {
          type: 'accept',
          ring: 'ring0',
          from: 'A',
          to: 'B',
          ballot: { round: 7, leader: 'A' },
          slot: 123456,
          decidedUpTo: 123450,
          value: { k: 'batch', origin: 'A', inc: 1, firstId: 1000, cmds: [new Uint8Array(n).fill(7)] },
        };
  const overhead = encodeMessage(make(0)).length;
  return make(Math.max(0, size - overhead - (size - overhead > 255 ? 2 : 1)));
}

const server = await startNatsServer();
const quiet = { warn: () => {}, info: () => {} };
const a = await createNatsTransport({ servers: server.url, self: 'A', logger: quiet });
const b = await createNatsTransport({ servers: server.url, self: 'B', logger: quiet });

async function endToEnd(msg: Message): Promise<{ msgs: number; perSec: number; mbPerSec: number }> {
  let received = 0;
  let sent = 0;
  let stopAt = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((r) => (finish = r));
  const pump = () => {
    while (sent - received < window && performance.now() < stopAt) {
      a.send(msg);
      sent++;
    }
  };
  b.setReceiver(() => {
    received++;
    if (received % 256 === 0) pump();
    if (performance.now() >= stopAt && received === sent) finish();
  });
  // warm-up
  stopAt = performance.now() + 300;
  pump();
  await done;
  received = sent = 0;
  const t0 = performance.now();
  stopAt = t0 + seconds * 1000;
  const finished = new Promise<void>((r) => (finish = r));
  pump();
  await finished;
  const dt = (performance.now() - t0) / 1000;
  const bytes = encodeMessage(msg).length;
  return { msgs: received, perSec: received / dt, mbPerSec: (received * bytes) / dt / 1e6 };
}

/** The same window over two bare nats connections, payload encoded once: what NATS alone costs. */
async function rawBaseline(msg: Message): Promise<number> {
  const data = encodeMessage(msg);
  const pub = await connect({ servers: server.url });
  const sub = await connect({ servers: server.url });
  let received = 0;
  let sent = 0;
  let stopAt = 0;
  let finish: () => void = () => {};
  const pump = () => {
    while (sent - received < window && performance.now() < stopAt) {
      pub.publish('bench.raw', data);
      sent++;
    }
  };
  sub.subscribe('bench.raw', {
    callback: () => {
      received++;
      if (received % 256 === 0) pump();
      if (performance.now() >= stopAt && received === sent) finish();
    },
  });
  await sub.flush();
  const t0 = performance.now();
  stopAt = t0 + seconds * 1000;
  const done = new Promise<void>((r) => (finish = r));
  pump();
  await done;
  const dt = (performance.now() - t0) / 1000;
  await pub.close();
  await sub.close();
  return received / dt;
}

function sendOnly(msg: Message, n: number): { perSec: number; dropped: number } {
  const before = a.stats();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) a.send(msg);
  const dt = (performance.now() - t0) / 1000;
  const after = a.stats();
  return { perSec: n / dt, dropped: after.dropped.backpressure - before.dropped.backpressure };
}

console.log(`node ${process.version}, nats-server at ${server.url}, window ${window}, ${seconds}s per size`);
for (const size of [100, 6 * 1024]) {
  const msg = messageOfSize(size);
  const actual = encodeMessage(msg).length;
  const e2e = await endToEnd(msg);
  b.setReceiver(() => {});
  const so = sendOnly(msg, size < 1000 ? 100_000 : 4_000);
  await new Promise((r) => setTimeout(r, 500));
  const raw = await rawBaseline(msg);
  console.log(
    `${String(actual).padStart(5)} B: end-to-end ${Math.round(e2e.perSec).toLocaleString('en-US')} msg/s ` +
      `(${e2e.mbPerSec.toFixed(1)} MB/s, ${e2e.msgs.toLocaleString('en-US')} msgs); ` +
      `send() alone ${Math.round(so.perSec).toLocaleString('en-US')} calls/s (${so.dropped} dropped over ` +
      `maxPendingBytes); ` +
      `bare nats client, same bytes: ${Math.round(raw).toLocaleString('en-US')} msg/s`,
  );
}
await a.close();
await b.close();
await server.stop();
