/**
 * The floor under the cluster's unpipelined latency: round trips of a 100-byte message between two
 * node processes over loopback TCP (no engine, no disk), 10,000 one at a time.
 *
 *   node --conditions=source --import tsx apps/bench/src/loopback-rtt.ts
 */
import { fork } from 'node:child_process';
import net from 'node:net';

if (process.argv[2] === 'echo') {
  const s = net
    .createServer((c) => {
      c.setNoDelay(true);
      c.on('data', (d) => c.write(d));
    })
    .listen(0, '127.0.0.1', () => process.send!((s.address() as net.AddressInfo).port));
} else {
  const child = fork(process.argv[1]!, ['echo'], { execArgv: process.execArgv });
  const port = await new Promise<number>((r) => child.once('message', (p) => r(p as number)));
  const c = net.connect(port, '127.0.0.1');
  c.setNoDelay(true);
  await new Promise((r) => c.once('connect', r));
  const N = 10_000;
  const lat: number[] = [];
  const buf = Buffer.alloc(100, 1);
  let t0 = 0n;
  await new Promise<void>((done) => {
    c.on('data', () => {
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (lat.length >= N) return done();
      t0 = process.hrtime.bigint();
      c.write(buf);
    });
    t0 = process.hrtime.bigint();
    c.write(buf);
  });
  lat.sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(N - 1, Math.floor((N * p) / 100))]!.toFixed(3);
  console.log(
    `loopback round trip, 100 B, ${N} one at a time: p50 ${pct(50)} ms, p99 ${pct(99)} ms, p99.9 ${pct(99.9)} ms`,
  );
  c.destroy();
  child.kill();
}
