import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Bus, realEnv, type Transport } from '@decree/bus';
import type { AcceptorStore, SnapshotStore } from '@decree/protocol';
import {
  type BatchOutcome,
  BusyError,
  type CommandFailure,
  ConfigChangeError,
  NotLeaderError,
  batchError,
  createReplica,
  type Replica,
} from '@decree/replica';
import { FileSnapshotStore, FileWalStore, MemorySnapshotStore, MemoryStore, PmemStore } from '@decree/storage';
import { KvMachine } from '@decree/kv-machine';
import { createTcpTransport } from '@decree/transport-tcp';
import { KvServer } from '@decree/app-kv';
import { type ClusterConfig, snapshotPolicy } from './config.ts';
import { startStatusServer, type StatusServer } from './status.ts';
import { instrumentBus } from '@decree/telemetry';

export interface RunningNode {
  id: string;
  replicas: Map<string, Replica>;
  machines: Map<string, KvMachine>;
  kv: KvServer;
  clientAddress: { host: string; port: number };
  /** the status page (/, /status.json, /metrics) when the config gives a statusPort */
  statusAddress?: { host: string; port: number };
  stop(): Promise<void>;
}

export interface StartNodeOptions {
  log: Logger;
  inspect?: Parameters<typeof createReplica>[0]['inspect'];
  /** trace command batches from the bus (records only once an OTel SDK is registered) */
  tracing?: { ratio?: number };
}

/** Snapshots live beside the log (<dataDir>/<id>/<ring>/snapshots); the log is truncated below them. */
export function makeSnapshots(cfg: ClusterConfig, id: string, ring: string): SnapshotStore {
  return cfg.storage === 'memory'
    ? new MemorySnapshotStore()
    : new FileSnapshotStore(join(cfg.dataDir, id, ring, 'snapshots'));
}

/** The acceptor's store the config asks for: <dataDir>/<id>/<ring> (wal, pmem) or memory. */
export function makeStore(cfg: ClusterConfig, id: string, ring: string): AcceptorStore {
  const dir = join(cfg.dataDir, id, ring);
  switch (cfg.storage) {
    case 'memory':
      return new MemoryStore();
    case 'pmem':
      mkdirSync(dir, { recursive: true });
      return new PmemStore({ path: join(dir, 'pmem.log'), capacity: cfg.pmemSizeMiB << 20 });
    default:
      return new FileWalStore({ dir, ...(cfg.wal ? { sync: cfg.wal.sync } : {}) });
  }
}

async function makeTransport(cfg: ClusterConfig, id: string, log: Logger): Promise<Transport> {
  const me = cfg.replicas.find((r) => r.id === id)!;
  if (cfg.transport === 'nats') {
    const { createNatsTransport } = await import('@decree/transport-nats');
    const n = cfg.nats!;
    return createNatsTransport({
      servers: n.servers,
      self: id,
      ...(n.subjectPrefix ? { subjectPrefix: n.subjectPrefix } : { subjectPrefix: cfg.cluster }),
      ...(n.user ? { user: n.user } : {}),
      ...(n.pass ? { pass: n.pass } : {}),
      ...(n.token ? { token: n.token } : {}),
    });
  }
  if (cfg.transport === 'rdma') {
    // fails at start with "no RDMA device found (...)" on a machine without one; queue-pair details
    // are traded over a TCP side channel on each replica's `port` (handshake and secret as TCP's)
    const { createRdmaTransport, createRdmaSideChannel } = await import('@decree/transport-shm');
    const logger = {
      info: (o: object, m: string) => log.info(o, m),
      warn: (o: object, m: string) => log.warn(o, m),
      error: (o: object, m: string) => log.error(o, m),
    };
    return createRdmaTransport({
      self: id,
      peers: cfg.replicas.map((r) => r.id),
      ...(cfg.rdma?.device ? { device: cfg.rdma.device } : {}),
      ...(cfg.rdma?.port !== undefined ? { port: cfg.rdma.port } : {}),
      ...(cfg.rdma?.gidIndex !== undefined ? { gidIndex: cfg.rdma.gidIndex } : {}),
      ...(cfg.rdma?.capacity ? { capacity: cfg.rdma.capacity } : {}),
      exchange: createRdmaSideChannel({
        self: id,
        listen: { host: me.host, port: me.port },
        peers: Object.fromEntries(cfg.replicas.map((r) => [r.id, { host: r.host, port: r.port }])),
        ...(cfg.secret ? { secret: cfg.secret } : {}),
        logger,
      }),
      logger,
    });
  }
  if (cfg.transport === 'shm') {
    const { createShmTransport } = await import('@decree/transport-shm');
    return createShmTransport({
      self: id,
      peers: cfg.replicas.map((r) => r.id),
      cluster: cfg.cluster,
      dir: cfg.shm?.dir ?? '/dev/shm',
      ...(cfg.shm?.capacity ? { capacity: cfg.shm.capacity } : {}),
      logger: { warn: (o, m) => log.warn(o, m), error: (o, m) => log.error(o, m) },
    });
  }
  const peers = Object.fromEntries(cfg.replicas.map((r) => [r.id, { host: r.host, port: r.port }]));
  return createTcpTransport({
    self: id,
    listen: { host: me.host, port: me.port },
    peers,
    ...(cfg.secret ? { secret: cfg.secret } : {}),
    ...(cfg.tls ? { tls: cfg.tls } : {}),
    // only the configured replicas may connect; messages claiming another sender are dropped
    members: cfg.replicas.map((r) => r.id),
    ...(cfg.tcp ? { encodeOnce: cfg.tcp.encodeOnce } : {}),
    logger: { warn: (o, m) => log.warn(o, m), error: (o, m) => log.error(o, m) },
  });
}

/**
 * Each command's outcome, retrying (for up to `budgetMs`) only the commands that certainly did not
 * execute: refused by a leader before it proposed them (busy, or not the leader), or sent when no
 * leader was known. Those form the tail of the batch (commands are proposed in order), so a retry
 * keeps the order. A command that may have executed (`maybeExecuted`) is never retried: outside a
 * client session a retry could apply it twice (issue #17).
 */
/** The RESP server's address and limits from the cluster config (a replica's or a client process's). */
export function kvServerLimits(cfg: ClusterConfig, me: { clientPort: number; host: string }) {
  return {
    port: me.clientPort,
    host: me.host,
    ...(cfg.kv.password ? { password: cfg.kv.password } : {}),
    maxValueBytes: cfg.kv.maxValueBytes,
    maxPendingPerConnection: cfg.kv.maxPendingPerConnection,
    maxConnections: cfg.kv.maxConnections,
    limits: { maxBulkLength: cfg.kv.maxRequestBytes },
  };
}

/** A RESP backend's command execution through `target` (a replica, or a client process's client side). */
export function kvExecute(target: Pick<Replica, 'executeEach'>) {
  return {
    execute: async (cmds: readonly Uint8Array[]) => {
      const o = await executeEachWithRetry(target, cmds);
      const err = batchError(o);
      if (err) throw err;
      return o.results;
    },
    executeEach: (cmds: readonly Uint8Array[]) => executeEachWithRetry(target, cmds),
  };
}

export async function executeEachWithRetry(
  replica: Pick<Replica, 'executeEach'>,
  cmds: readonly Uint8Array[],
  budgetMs = 3_000,
): Promise<BatchOutcome> {
  const end = Date.now() + budgetMs;
  const results: (Uint8Array | undefined)[] = new Array(cmds.length);
  let slot = 0;
  let from = 0; // commands [0, from) have their final outcome
  let failed: CommandFailure[] = [];
  for (;;) {
    const o = await replica.executeEach(from === 0 ? cmds : cmds.slice(from));
    for (let i = 0; i < o.results.length; i++) results[from + i] = o.results[i];
    if (o.slot > slot) slot = o.slot;
    const f = (o.failed ?? []).map((x) => ({ ...x, index: x.index + from }));
    const byIndex = new Map(f.map((x) => [x.index, x]));
    // [k, n): the tail that certainly did not execute and was refused for a passing reason
    let k = cmds.length;
    for (let x = byIndex.get(k - 1); k > from && x && !x.maybeExecuted && retryable(x.error); x = byIndex.get(k - 1))
      k--;
    failed = failed.concat(f.filter((x) => x.index < k));
    if (k === cmds.length) return failed.length ? { results, slot, failed } : { results, slot };
    if (Date.now() >= end) return { results, slot, failed: failed.concat(f.filter((x) => x.index >= k)) };
    from = k;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const retryable = (e: Error): boolean => e instanceof BusyError || e instanceof NotLeaderError;

/** Starts one replica process's worth: the transport, one replica per ring, the RESP front end. */
export async function startNode(cfg: ClusterConfig, id: string, o: StartNodeOptions): Promise<RunningNode> {
  const me = cfg.replicas.find((r) => r.id === id);
  if (!me)
    throw new Error(`replica "${id}" is not in the config (replicas: ${cfg.replicas.map((r) => r.id).join(', ')})`);
  const env = realEnv();
  const transport = await makeTransport(cfg, id, o.log);
  const bus = new Bus(env, transport);
  const tracing = o.tracing
    ? instrumentBus(bus, { replica: id, ...(o.tracing.ratio !== undefined ? { ratio: o.tracing.ratio } : {}) })
    : undefined;
  const peers = cfg.replicas.map((r) => r.id);
  // replicas listed but not in `members` start with no configuration and join through a change
  const initial = cfg.members ?? peers;
  const members = initial.includes(id) ? initial : [];
  const replicas = new Map<string, Replica>();
  const machines = new Map<string, KvMachine>();
  for (const ring of cfg.rings) {
    const sm = new KvMachine({
      sessionTtlSlots: cfg.kv.sessionTtlSlots,
      sessionTtlMs: cfg.kv.sessionTtlSeconds * 1000,
      maxSessions: cfg.kv.maxSessions,
    });
    machines.set(ring, sm);
    const storage = makeStore(cfg, id, ring);
    const replica = await createReplica({
      id,
      ring,
      configuration: { members },
      peers,
      storage,
      snapshots: makeSnapshots(cfg, id, ring),
      stateMachine: sm,
      bus,
      env,
      log: (level, msg, obj) => o.log[level](obj ?? {}, msg),
      options: {
        elector: {
          electionTimeoutMinMs: cfg.election.minMs,
          electionTimeoutMaxMs: cfg.election.maxMs,
          heartbeatMs: cfg.election.heartbeatMs,
        },
        proposer: { maxInflightSlots: cfg.batching.maxInflightSlots, maxBatchCmds: cfg.batching.maxBatchCmds },
        snapshotter: snapshotPolicy(cfg),
      },
      ...(o.inspect ? { inspect: o.inspect } : {}),
    });
    replicas.set(ring, replica);
    const info = storage instanceof PmemStore ? storage.logInfo() : null;
    if (info && info.capacity !== cfg.pmemSizeMiB << 20)
      o.log.warn(
        { replica: id, ring, capacityMiB: info.capacity / (1 << 20), pmemSizeMiB: cfg.pmemSizeMiB },
        `the pmem log was created with ${info.capacity / (1 << 20)} MiB; ` +
          `pmemSizeMiB ${cfg.pmemSizeMiB} applies to a new log only`,
      );
  }
  const first = cfg.rings[0]!;
  const replica = replicas.get(first)!;
  const sm = machines.get(first)!;
  const kv = new KvServer({
    ...kvServerLimits(cfg, me),
    backend: {
      ...kvExecute(replica),
      readLocal: (cmd) => sm.query(cmd),
      isLeader: () => replica.isLeader(),
      readIndex: () => replica.readIndex(),
      waitForSlot: (minSlot, timeoutMs) => replica.waitForSlot(minSlot, timeoutMs),
      // on a follower the leader's Decide (sent before it executes and answers) precedes the forwarded reply
      writeToken: () => Math.max(replica.executedSlot(), replica.highestChosenSlot()),
      configuration: () => ({ ...replica.getConfiguration(), leader: replica.currentLeader() }),
      bootstrap: async (ids) => {
        const unknown = ids.filter((x) => !peers.includes(x));
        if (unknown.length)
          throw new ConfigChangeError('INVALID', `not in the cluster config: ${unknown.join(', ')}`, false, undefined);
        return { ...(await replica.bootstrap(ids)) };
      },
      changeConfiguration: async (ids) => {
        const unknown = ids.filter((x) => !peers.includes(x));
        if (unknown.length)
          throw new ConfigChangeError(
            'INVALID',
            "not in the cluster config (add their addresses to every replica's config file first): " +
              unknown.join(', '),
            false,
            undefined,
          );
        const r = await replica.changeConfiguration(ids);
        return { epoch: r.epoch, members: r.members, slot: r.slot };
      },
      status: () => {
        const leader = replica.currentLeader();
        const l = cfg.replicas.find((r) => r.id === leader);
        return {
          ...replica.status(),
          ...(l ? { leaderClient: `${l.host}:${l.clientPort}` } : {}),
          rings: [...replicas.values()].map((r) => ({
            ring: r.ring,
            leader: r.currentLeader(),
            executed: r.executedSlot(),
          })),
        };
      },
    },
    log: (level, msg, obj) => o.log[level](obj ?? {}, msg),
  });
  const clientAddress = await kv.listen();
  let status: StatusServer | undefined;
  if (me.statusPort !== undefined) {
    const stats = (
      transport as { stats?: () => { bytesIn: number; bytesOut: number; controlDrops?: number; bulkDrops?: number } }
    ).stats;
    status = await startStatusServer({
      replicas: [...replicas.values()],
      host: me.host,
      port: me.statusPort,
      // the cluster view fetches the other members' /status.json
      peers: cfg.replicas.map((r) => ({
        id: r.id,
        ...(r.statusPort !== undefined
          ? { url: `http://${r.host.includes(':') ? `[${r.host}]` : r.host}:${r.statusPort}/` }
          : {}),
      })),
      ...(typeof stats === 'function' ? { transportStats: () => stats.call(transport) } : {}),
      log: (level, msg, obj) => o.log[level](obj ?? {}, msg),
    });
  }
  let stopped = false;
  return {
    id,
    replicas,
    machines,
    kv,
    clientAddress,
    ...(status ? { statusAddress: status.address } : {}),
    async stop() {
      if (stopped) return;
      stopped = true;
      await status?.close();
      tracing?.stop();
      await kv.close(); // stop accepting
      for (const r of replicas.values()) await r.stop(); // finishes the durable writes, closes the stores
      await bus.close(); // closes the transport
    },
  };
}
