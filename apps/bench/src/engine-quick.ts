/**
 * A quick look at the in-process engine's per-command cost, for same-run A/B of a hot-path change
 * between two checkouts (run it in each, interleaved): one client without pipelining on memory
 * stores (ops/s, p50, CPU µs per command) and the engine alone pipelined with a no-op state machine.
 *
 *   node --conditions=source --import tsx apps/bench/src/engine-quick.ts [rounds=3]
 */
import { inProcessBench, inProcessLatencyBench } from './inprocess.ts';

const rounds = Number(process.argv[2] ?? 3);
for (let i = 0; i < rounds; i++) {
  const one = await inProcessLatencyBench({ seconds: 3 });
  const noop = await inProcessBench({ seconds: 2, machine: 'noop' });
  console.log(
    `1 client: ${Math.round(one.opsPerSec)} ops/s, p50 ${one.p50ms} ms, ${one.cpuSecPerMillion.toFixed(0)} CPU µs/op` +
      ` | engine alone, pipelined: ${Math.round(noop.opsPerSec)} ops/s, ${noop.cpuSecPerMillion.toFixed(2)} CPU µs/op`,
  );
}
process.exit(0);
