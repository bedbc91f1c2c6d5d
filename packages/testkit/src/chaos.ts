import type { SimNetworkOptions } from '@decree/bus';
import type { ReplicaId } from '@decree/protocol';
import type { RoleMachines } from '@decree/replica';
import { enc, type LogMachine } from './log-machine.ts';
import { SimCluster } from './sim-cluster.ts';
import { checkAgreement, checkDurability, checkValidity, type AppliedEntry } from './checks.ts';

export interface ChaosParams {
  seed: number;
  n: 3 | 5;
  steps: number;
  net: SimNetworkOptions;
  /** probability per step of a fault event */
  faultRate: number;
  /** role machines to run instead of the standard ones at every replica (e.g. the forgetful acceptor) */
  machines?: RoleMachines;
}

export interface ChaosResult {
  submitted: number;
  acked: number;
  applied: number;
  leaderChanges: number;
  log: string[];
}

/**
 * One random schedule on a simulated cluster: client submissions at the leader (and at followers),
 * crashes and restarts of a minority, partitions, drops, duplicates and reordering; then the
 * network heals, everyone restarts, and agreement, validity and durability are checked.
 * Deterministic for a given seed.
 */
export async function runChaos(p: ChaosParams): Promise<ChaosResult> {
  const c = new SimCluster<LogMachine>({
    n: p.n,
    seed: p.seed,
    net: p.net,
    options: { elector: { electionTimeoutMinMs: 150, electionTimeoutMaxMs: 300, heartbeatMs: 40 } },
    ...(p.machines ? { machines: () => p.machines } : {}),
  });
  await c.start();
  const rng = c.sched.rng.fork();
  const submitted = new Set<string>();
  const acked = new Set<string>();
  const trace: string[] = [];
  const quorum = Math.floor(p.n / 2) + 1;
  const maxDown = p.n - quorum;
  let seq = 0;
  let leaderChanges = 0;
  let lastLeader: ReplicaId | undefined;
  const down = () => c.ids.filter((id) => !c.nodes.get(id)!.replica);

  for (let step = 0; step < p.steps; step++) {
    const r = rng.next();
    if (r < p.faultRate) {
      const kind = rng.int(0, 3);
      if (kind === 0 && down().length < maxDown) {
        const victim = rng.chance(0.5) ? (c.leader() ?? rng.pick(c.up())) : rng.pick(c.up());
        trace.push(`t=${c.sched.now().toFixed(1)} crash ${victim}`);
        await c.crash(victim);
      } else if (kind === 1 && down().length > 0) {
        const back = rng.pick(down());
        trace.push(`t=${c.sched.now().toFixed(1)} restart ${back}`);
        await c.restart(back);
      } else if (kind === 2) {
        const shuffled = [...c.ids].sort(() => rng.next() - 0.5);
        const cut = rng.int(1, maxDown);
        const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
        trace.push(`t=${c.sched.now().toFixed(1)} partition ${JSON.stringify(groups)}`);
        c.net.partition(groups);
      } else {
        trace.push(`t=${c.sched.now().toFixed(1)} heal`);
        c.net.heal();
      }
    } else {
      const k = rng.int(1, 5);
      const up = c.up();
      const target = rng.chance(0.85) ? (c.leader() ?? rng.pick(up)) : rng.pick(up);
      const rep = c.nodes.get(target)?.replica;
      if (rep) {
        for (let i = 0; i < k; i++) {
          const cmd = `c${seq++}`;
          submitted.add(cmd);
          rep.submit(enc(cmd)).then(
            () => acked.add(cmd),
            () => {},
          );
        }
      }
    }
    c.run(rng.int(1, 60));
    await c.settle();
    const l = c.leader();
    if (l && l !== lastLeader) {
      leaderChanges++;
      lastLeader = l;
    }
  }
  // heal everything and let the cluster converge
  c.net.heal();
  c.net.opts = { ...c.net.opts, dropRate: 0, duplicateRate: 0 };
  for (const id of down()) await c.restart(id);
  c.waitForLeader(10_000);
  // a final command through the leader flushes every earlier slot to all replicas
  let fin = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    fin = `final-${p.seed}-${attempt}`;
    submitted.add(fin);
    try {
      await c.submitAndWait(enc(fin), 2_000);
      acked.add(fin);
      break;
    } catch {
      c.run(300);
    }
  }
  c.run(2_000);
  await c.settle();

  const logs = new Map<string, readonly AppliedEntry[]>();
  for (const id of c.ids) logs.set(id, c.sm(id).applied);
  checkAgreement(logs);
  checkValidity(logs, submitted);
  checkDurability(logs, acked, c.ids.length); // after healing, every replica has every acknowledged command
  if (!acked.has(fin)) throw new Error(`liveness: the cluster did not recover (seed ${p.seed})\n${trace.join('\n')}`);
  const applied = Math.max(...[...logs.values()].map((l) => l.length));
  await c.stop();
  return { submitted: submitted.size, acked: acked.size, applied, leaderChanges, log: trace };
}
