/**
 * Benchmark: time to check generated linearizable histories (and one broken copy: the last completed
 * get reads a value never written, so the whole history must be searched).
 *   node --conditions=source --import tsx tools/lincheck/src/bench.ts
 * Prints wall and CPU milliseconds (CPU is the figure to compare on a loaded machine).
 */
import { checkHistory } from './checker.ts';
import { randomHistory, type RandomHistoryOptions } from './generate.ts';

const cases: { name: string; o: RandomHistoryOptions }[] = [
  { name: '10k ops, 100 keys, 8 clients', o: { ops: 10_000, keys: 100, clients: 8 } },
  { name: '10k ops, 100 keys, 10 clients, 10% timeouts', o: { ops: 10_000, keys: 100, clients: 10, timeoutRate: 0.1 } },
  { name: '10k ops, 10 keys, 10 clients', o: { ops: 10_000, keys: 10, clients: 10 } },
  { name: '10k ops, 1 key, 5 clients, no timeouts', o: { ops: 10_000, keys: 1, clients: 5, timeoutRate: 0 } },
  { name: '10k ops, 1 key, 5 clients, 2% t/o, incr 1', o: { ops: 10_000, keys: 1, clients: 5, incrDeltas: [1] } },
  {
    name: '10k ops, 1 key, 5 clients, 2% t/o, no incr',
    o: { ops: 10_000, keys: 1, clients: 5, mix: [50, 30, 10, 0, 10] },
  },
  {
    name: '2k ops, 1 key, 5 clients, 10% t/o, incr 1',
    o: { ops: 2_000, keys: 1, clients: 5, timeoutRate: 0.1, incrDeltas: [1] },
  },
  { name: '10k ops, 1 key, 5 clients, 2% t/o, incr ±2', o: { ops: 10_000, keys: 1, clients: 5 } },
  { name: '100k ops, 1000 keys, 10 clients', o: { ops: 100_000, keys: 1000, clients: 10 } },
];

const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const fmt = (wall: number, c: number) => `${wall.toFixed(0).padStart(6)} ms (cpu ${c.toFixed(0).padStart(6)} ms)`;

for (const { name, o } of cases) {
  const { ops } = randomHistory(42, o);
  const t0 = performance.now();
  const c0 = cpu();
  const res = checkHistory(ops, { timeoutMs: 30_000 });
  const ms = fmt(performance.now() - t0, cpu() - c0);
  // A broken copy: the last completed get of the history reads a value nobody wrote.
  const broken = ops.map((op) => ({ ...op }));
  const victim = broken.findLastIndex((op) => op.op === 'get' && op.complete !== null && op.ok !== false);
  broken[victim].result = 'never-written';
  const t1 = performance.now();
  const c1 = cpu();
  const bad = checkHistory(broken, { timeoutMs: 30_000 });
  const msBad = fmt(performance.now() - t1, cpu() - c1);
  console.log(
    `${name.padEnd(44)} ok=${res.ok}${res.timedOut ? ' (timed out)' : ''} ${ms} | ` +
      `broken: ok=${bad.ok}${bad.timedOut ? ' (timed out)' : ''} ${msBad}`,
  );
}
