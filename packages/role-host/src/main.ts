/**
 * One role of one replica as a process, over NATS:
 *   node --conditions=source --import tsx packages/role-host/src/main.ts --config cluster.json --id r1 --role acceptor --inc 1234
 * The config is the decree cluster config (transport must be "nats"). All role processes of a replica
 * get the same --inc. The learner process logs {"msg":"executed","executedUpTo":N,"digest":"..."}.
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { Bus, realEnv } from '@decree/bus';
import { KvMachine } from '@decree/kv-machine';
import { FileSnapshotStore, FileWalStore } from '@decree/storage';
import { createNatsTransport } from '@decree/transport-nats';
import { loadConfig } from '@decree/app-replica';
import { HOSTED_ROLES, startRoleHost, type HostedRole } from './host.ts';
import { contractsWanted, setContracts } from '@decree/protocol';

// a program (not a library) reads the environment: DECREE_CONTRACTS=1 turns the code contracts on
setContracts(contractsWanted(process.env.DECREE_CONTRACTS));

const program = new Command('decree-role')
  .requiredOption('--config <file>')
  .requiredOption('--id <replica>')
  .requiredOption('--role <role>', HOSTED_ROLES.join(' | '))
  .requiredOption('--inc <n>', 'the replica incarnation shared by its role processes')
  .option('--promote', 'elector: campaign at once', false)
  .option('--snapshot-every <slots>', 'snapshotter: a snapshot every this many slots (default 10000)');
program.parse();
const o = program.opts<{ config: string; id: string; role: string; inc: string; promote: boolean; snapshotEvery?: string }>();
const log = (obj: object) => process.stdout.write(JSON.stringify({ role: o.role, replica: o.id, ...obj }) + '\n');
try {
  if (!HOSTED_ROLES.includes(o.role as HostedRole)) throw new Error(`--role: unknown role "${o.role}" (${HOSTED_ROLES.join(', ')})`);
  const cfg = loadConfig(o.config);
  if (cfg.transport !== 'nats' || !cfg.nats) throw new Error('roles as processes need transport "nats" in the config');
  const env = realEnv();
  const transport = await createNatsTransport({
    servers: cfg.nats.servers,
    self: o.id,
    roles: [o.role as HostedRole],
    subjectPrefix: cfg.nats.subjectPrefix ?? cfg.cluster,
    ...(cfg.nats.user ? { user: cfg.nats.user } : {}),
    ...(cfg.nats.pass ? { pass: cfg.nats.pass } : {}),
    ...(cfg.nats.token ? { token: cfg.nats.token } : {}),
  });
  const bus = new Bus(env, transport, { splitRoles: true });
  const ring = cfg.rings[0]!;
  const sm = new KvMachine();
  const host = await startRoleHost({
    role: o.role as HostedRole,
    ring,
    id: o.id,
    members: cfg.replicas.map((r) => r.id),
    bus,
    env,
    inc: Number(o.inc),
    ...(o.role === 'acceptor' ? { store: new FileWalStore({ dir: join(cfg.dataDir, o.id, ring) }) } : {}),
    ...(o.role === 'learner' ? { stateMachine: sm } : {}),
    ...(o.role === 'snapshotter'
      ? {
          snapshots: new FileSnapshotStore(join(cfg.dataDir, o.id, ring, 'snapshots')),
          snapshotter: { truncateMargin: 10, ...(o.snapshotEvery ? { everySlots: Number(o.snapshotEvery) } : {}) },
        }
      : {}),
    elector: { electionTimeoutMinMs: cfg.election.minMs, electionTimeoutMaxMs: cfg.election.maxMs, heartbeatMs: cfg.election.heartbeatMs },
    proposer: { maxInflightSlots: cfg.batching.maxInflightSlots, maxBatchCmds: cfg.batching.maxBatchCmds },
  });
  log({ msg: 'role started' });
  if (o.role === 'elector' && o.promote) setTimeout(() => host.actor?.send({ type: 'promote' }), 200);
  if (o.role === 'learner' || o.role === 'proposer' || o.role === 'snapshotter' || o.role === 'config-manager') {
    let last = '';
    setInterval(() => {
      const ctx = host.actor!.getSnapshot().context as {
        executedUpTo?: number;
        ballot?: unknown;
        stats?: { saved?: number; installed?: number; truncatedBelow?: number };
        latest?: { slot: number };
        config?: { epoch: number; members: string[] };
      };
      const st = host.actor!.getSnapshot().value;
      const line =
        o.role === 'learner'
          ? JSON.stringify({ executedUpTo: ctx.executedUpTo, digest: sm.digest() })
          : o.role === 'snapshotter'
            ? JSON.stringify({ saved: ctx.stats?.saved, installed: ctx.stats?.installed, latestSlot: ctx.latest?.slot ?? 0, truncatedBelow: ctx.stats?.truncatedBelow })
            : o.role === 'config-manager'
              ? JSON.stringify({ state: st, epoch: ctx.config?.epoch, members: ctx.config?.members })
              : JSON.stringify({ state: st });
      if (line !== last) {
        last = line;
        log({ msg: o.role === 'learner' ? 'executed' : o.role === 'snapshotter' ? 'snapshots' : 'state', ...JSON.parse(line) });
      }
    }, 100);
  }
  const stop = () => {
    host.stop();
    void bus.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} catch (e) {
  console.error(`decree-role: ${(e as Error).message}`);
  process.exit(1);
}
