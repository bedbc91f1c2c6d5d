/**
 * CPU of an idle 3-process cluster (TCP, file WAL): the three replica processes' CPU seconds over
 * `seconds`, starting 2 s after the election (heartbeats, ticks, idle Decides). With a second bundle
 * of the decree command (`entry`), A/B runs of a change to the idle traffic.
 *
 *   node --conditions=source --import tsx apps/bench/src/idle-cpu.ts [seconds=20] [bundle]
 */
import { startProcessCluster } from './cluster.ts';

const seconds = Number(process.argv[2] ?? 20);
const entry = process.argv[3];
const h = await startProcessCluster({ transport: 'tcp', storage: 'wal', ...(entry ? { entry } : {}) });
try {
  await new Promise((r) => setTimeout(r, 2000));
  const c0 = h.cpuSeconds();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  console.log(
    `${entry ?? 'current bundle'}: idle CPU of the 3 processes ` +
      `over ${seconds} s: ${(h.cpuSeconds() - c0).toFixed(2)} s`,
  );
} finally {
  await h.stop();
}
