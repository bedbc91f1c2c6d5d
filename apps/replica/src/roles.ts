/**
 * `decree start --role <role>`: one role of one replica as this process, over NATS (roles as
 * processes, packages/role-host). The role `client` is the replica's client side with the RESP front
 * end on the replica's clientPort: every command, reads included, goes through the log (the state
 * machine lives in the learner's process), to this replica's proposer or forwarded to the leader's
 * client side.
 */
import type { Logger } from 'pino';
import { Bus, realEnv } from '@decree/bus';
import { KvMachine } from '@decree/kv-machine';
import type { AcceptorStore, Role } from '@decree/protocol';
import { statePath } from '@decree/replica';
import { HOSTED_ROLES, startRoleHost, type HostedRole } from '@decree/role-host';
import { createNatsTransport } from '@decree/transport-nats';
import { KvServer } from '@decree/app-kv';
import { type ClusterConfig, snapshotPolicy } from './config.ts';
import { kvExecute, kvServerLimits, makeSnapshots, makeStore } from './node.ts';

export { HOSTED_ROLES, type HostedRole };

/** the roles whose processes must share the replica's incarnation (batches and results carry it) */
export const ROLES_WITH_INC: readonly HostedRole[] = ['proposer', 'learner', 'config-manager', 'client'];

/** Why a config cannot run roles as processes (one line), or undefined. */
export function rolesConfigProblem(cfg: ClusterConfig, source: string): string | undefined {
  if (cfg.transport !== 'nats' || !cfg.nats)
    return `roles as separate processes need transport "nats" (${source} has transport "${cfg.transport}")`;
  if (cfg.rings.length > 1) return `roles as separate processes host one ring (${source} has ${cfg.rings.length})`;
  return undefined;
}

export interface RoleProcessOptions {
  log: Logger;
  /** the replica's incarnation, the same in every role process of the replica */
  inc: number;
  /** elector: campaign at once */
  promote?: boolean;
}

export interface RunningRole {
  role: HostedRole;
  /** role client: where the RESP front end listens */
  clientAddress?: { host: string; port: number };
  stop(): Promise<void>;
}

export async function startRoleProcess(
  cfg: ClusterConfig,
  id: string,
  role: HostedRole,
  o: RoleProcessOptions,
): Promise<RunningRole> {
  const me = cfg.replicas.find((r) => r.id === id)!;
  const nats = cfg.nats!;
  const env = realEnv();
  // the client side also hears its replica's elector messages (a copy: NATS gives every subscriber
  // one): the leader's heartbeats tell it where to forward commands
  const subscribed: Role[] = role === 'client' ? ['client', 'elector'] : [role];
  const transport = await createNatsTransport({
    servers: nats.servers,
    self: id,
    roles: subscribed,
    subjectPrefix: nats.subjectPrefix ?? cfg.cluster,
    name: `decree:${id}:${role}`,
    ...(nats.user ? { user: nats.user } : {}),
    ...(nats.pass ? { pass: nats.pass } : {}),
    ...(nats.token ? { token: nats.token } : {}),
    logger: { warn: (obj, msg) => o.log.warn(obj, msg), info: (obj, msg) => o.log.info(obj, msg) },
  });
  const bus = new Bus(env, transport, { splitRoles: true });
  const ring = cfg.rings[0]!;
  const ids = cfg.replicas.map((r) => r.id);
  const sm =
    role === 'learner'
      ? new KvMachine({
          sessionTtlSlots: cfg.kv.sessionTtlSlots,
          sessionTtlMs: cfg.kv.sessionTtlSeconds * 1000,
          maxSessions: cfg.kv.maxSessions,
        })
      : undefined;
  const store: AcceptorStore | undefined = role === 'acceptor' ? makeStore(cfg, id, ring) : undefined;
  const host = await startRoleHost({
    role,
    ring,
    id,
    members: cfg.members ?? ids,
    bus,
    env,
    inc: o.inc,
    ...(store ? { store } : {}),
    ...(sm ? { stateMachine: sm } : {}),
    ...(role === 'snapshotter' ? { snapshots: makeSnapshots(cfg, id, ring), snapshotter: snapshotPolicy(cfg) } : {}),
    elector: {
      electionTimeoutMinMs: cfg.election.minMs,
      electionTimeoutMaxMs: cfg.election.maxMs,
      heartbeatMs: cfg.election.heartbeatMs,
    },
    proposer: { maxInflightSlots: cfg.batching.maxInflightSlots, maxBatchCmds: cfg.batching.maxBatchCmds },
  });

  let kv: KvServer | undefined;
  let clientAddress: { host: string; port: number } | undefined;
  if (host.client) {
    const client = host.client;
    kv = new KvServer({
      ...kvServerLimits(cfg, me),
      // no readLocal, isLeader, readIndex, waitForSlot: the state machine is in the learner's process,
      // so every read (READONLY ones too) is a command through the log
      backend: {
        ...kvExecute(client),
        status: () => {
          const s = client.status();
          const l = cfg.replicas.find((r) => r.id === s.leader);
          return { ...s, ...(l ? { leaderClient: `${l.host}:${l.clientPort}` } : {}) };
        },
      },
      log: (level, msg, obj) => o.log[level](obj ?? {}, msg),
    });
    try {
      clientAddress = await kv.listen();
    } catch (e) {
      await host.stop();
      await bus.close();
      throw e;
    }
  }

  if (role === 'elector' && o.promote) setTimeout(() => host.actor?.send({ type: 'promote' }), 200);
  // what the role does, logged when it changes: the learner's executed slot and state digest, the
  // snapshotter's counts, the config-manager's configuration, the proposer's state
  let watch: NodeJS.Timeout | undefined;
  if (role === 'learner' || role === 'proposer' || role === 'snapshotter' || role === 'config-manager') {
    let last = '';
    watch = setInterval(() => {
      const snap = host.actor!.getSnapshot();
      const ctx = snap.context as {
        executedUpTo?: number;
        stats?: { saved?: number; installed?: number; truncatedBelow?: number };
        latest?: { slot: number };
        config?: { epoch: number; members: string[] };
      };
      const [msg, fields] =
        role === 'learner'
          ? ['executed', { executedUpTo: ctx.executedUpTo, digest: sm!.digest() }]
          : role === 'snapshotter'
            ? [
                'snapshots',
                {
                  saved: ctx.stats?.saved,
                  installed: ctx.stats?.installed,
                  latestSlot: ctx.latest?.slot ?? 0,
                  truncatedBelow: ctx.stats?.truncatedBelow,
                },
              ]
            : role === 'config-manager'
              ? ['state', { state: statePath(snap.value), epoch: ctx.config?.epoch, members: ctx.config?.members }]
              : ['state', { state: statePath(snap.value) }];
      const line = JSON.stringify(fields);
      if (line !== last) {
        last = line;
        o.log.info(fields, msg as string);
      }
    }, 100);
  }

  let stopped = false;
  return {
    role,
    ...(clientAddress ? { clientAddress } : {}),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (watch) clearInterval(watch);
      await kv?.close();
      await host.stop();
      await store?.close(); // the acceptor's durable writes finish
      await bus.close();
    },
  };
}
