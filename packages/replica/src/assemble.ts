/**
 * Builds the parts of one replica from its config: the bus, the six role actors (roles.ts), the
 * client-side modules (submissions, forwarding, read-index, bootstrap, config requests, notices) and
 * the bus registrations that connect them. The Replica class then only holds them and offers the API.
 */
import type { Actor } from 'xstate';
import { Bus, realEnv } from '@decree/bus';
import type { AcceptorStore, Message, ReplicaId, Slot, SnapshotMeta } from '@decree/protocol';
import { MemorySnapshotStore } from '@decree/storage/memory';
import type { LocalReplay } from './local-replay.ts';
import { composeRoles } from './roles.ts';
import { initialConfiguration, storedConfig0 } from './config0.ts';
import { NotLeaderError } from './errors.ts';
import { type BatchOutcome, Submitter } from './submissions.ts';
import { Forwarder } from './forwarding.ts';
import { Poller } from './poller.ts';
import { ReadIndex } from './read-index.ts';
import { ConfigRequests } from './config-requests.ts';
import { Bootstrapper } from './bootstrap.ts';
import { Notices } from './notices.ts';
import { type Deliver, rateLimited, registerRoles, watchFailures } from './wiring.ts';
import type { CreateReplicaConfig } from './types.ts';

/** What the parts ask of the replica that holds them. */
export interface ReplicaHost {
  currentLeader(): ReplicaId | undefined;
  isLeader(): boolean;
  executedSlot(): Slot;
  submitEach(commands: readonly Uint8Array[]): Promise<BatchOutcome>;
  /** a role failed (threw): the replica stops */
  fatal(role: string, e: unknown): void;
  /** the state machine threw while applying a command */
  applyError(err: unknown, slot: Slot): void;
}

export function assemble(
  cfg: CreateReplicaConfig,
  recovered: Awaited<ReturnType<AcceptorStore['recover']>>,
  restoredFrom: SnapshotMeta | undefined,
  replay: LocalReplay | undefined,
  host: ReplicaHost,
) {
  const self = cfg.id;
  const ring = cfg.ring ?? 'default';
  const env = cfg.env ?? realEnv();
  const sm = cfg.stateMachine;
  const store = cfg.storage;
  const snapshots = cfg.snapshots ?? cfg.options?.makeSnapshotStore?.(self) ?? new MemorySnapshotStore();
  const startSlot = replay?.upTo ?? restoredFrom?.slot ?? 0;
  // the initial configuration stored at the first start (or by a bootstrap) wins over the given one;
  // a configuration change in the replayed log is newer still
  const config = replay?.config ?? initialConfiguration(storedConfig0(recovered) ?? cfg.configuration, restoredFrom);
  const peers = [...new Set([...(cfg.peers ?? []), ...cfg.configuration.members, ...config.members])];
  const bus = cfg.bus ?? new Bus(env, cfg.transport);
  const inc = Math.floor(env.random() * 0x7fffffff);
  const scope = { ring, self, inc, bus, env };
  const roles = composeRoles({
    ...scope,
    sm,
    store,
    snapshots,
    config,
    members: config.members,
    peers,
    recovered,
    startSlot,
    ...(restoredFrom ? { restoredFrom } : {}),
    ...(replay ? { replay } : {}),
    cfg,
    report: rateLimited(() => env.clock.now(), cfg.log, { replica: self, ring }),
    onApplyError: (err, slot) => host.applyError(err, slot),
  });
  const { acceptor, proposer, learner, elector, snapshotter, configManager } = roles;
  const poller = new Poller(
    env,
    () => [elector, learner, proposer],
    () => new NotLeaderError(host.currentLeader(), false),
  );
  const leader = { currentLeader: () => host.currentLeader() };
  const notices = new Notices(sm, self, config, () => learner.getSnapshot().context.config);
  const parts = {
    ...scope,
    env,
    sm,
    store,
    snapshots,
    ownsBus: !cfg.bus,
    transport: cfg.transport,
    tickMs: cfg.options?.tickMs ?? 10,
    roles,
    notices,
    poller,
    submitter: new Submitter(scope, leader.currentLeader),
    forwarder: new Forwarder(scope),
    configRequests: new ConfigRequests(scope),
    reads: new ReadIndex({ ...scope, ...leader, poller, proposer, executedSlot: () => host.executedSlot() }),
    bootstrapper: new Bootstrapper({
      ...scope,
      ...leader,
      store,
      poller,
      config: () => notices.config,
      take: (c) => learner.send({ type: 'bootstrap', config: c }),
    }),
    unregister: [] as (() => void)[],
    /** each role actor's way in (its fast lane when it has one): the ticks take it too */
    deliver: new Map<Actor<any>, Deliver>(),
  };
  const named = { acceptor, proposer, learner, elector, snapshotter, 'config-manager': configManager };
  const fast = (cfg.options?.fastLane ?? true) && !cfg.inspect;
  const toClient = (m: Message) => onClientMessage(parts, host, m);
  parts.unregister = registerRoles(bus, ring, self, named, toClient, fast, parts.deliver);
  // role changes are seen on the proposer's own state, at once (RSL NotifyStatus)
  proposer.subscribe((snap) => notices.onProposerState(snap.value, snap.context.leaderHint));
  // a role that throws (a safety check that is always on, or a contract in tests) stops the replica
  watchFailures(named, (role, e) => host.fatal(role, e));
  return parts;
}

export type ReplicaParts = ReturnType<typeof assemble>;

/** The client side's messages: outcomes, answers to requests, notices, forwarded commands. */
function onClientMessage(p: ReplicaParts, host: ReplicaHost, m: Message): void {
  if (p.submitter.onMessage(m)) return;
  if (m.type === 'recovered') p.notices.onRecovered();
  else if (m.type === 'config-notice') p.notices.onConfigNotice(m);
  else if (m.type === 'config-result') p.configRequests.onResult(m, p.notices.info());
  else if (m.type === 'bootstrap') p.bootstrapper.onInvite(m);
  else if (m.type === 'bootstrap-ack') p.bootstrapper.onAck(m);
  else if (m.type === 'read-ack') p.reads.onAck(m);
  else if (m.type === 'client-rep') p.forwarder.onReply(m);
  else if (m.type === 'client-req')
    p.forwarder.serve(m, host.isLeader(), host.currentLeader(), (cmds) => host.submitEach(cmds));
}
