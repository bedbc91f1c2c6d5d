/**
 * The six role machines of one replica, with their inputs: the wiring, nothing else. Each takes its
 * clock from the environment and talks to the others only by messages on the bus.
 */
import { createActor, type InspectionEvent, type Observer } from 'xstate';
import type { Bus, Env } from '@decree/bus';
import type {
  AcceptorStore,
  Configuration,
  Message,
  RecoveredState,
  ReplicaId,
  RingId,
  Slot,
  SnapshotMeta,
  SnapshotStore,
  StateMachine,
} from '@decree/protocol';
import { acceptorMachine } from '@decree/acceptor';
import { proposerMachine } from '@decree/proposer';
import { learnerMachine } from '@decree/learner';
import { electorMachine } from '@decree/elector';
import { configManagerMachine } from '@decree/config-manager';
import { snapshotterMachine } from '@decree/snapshotter';
import { retainWindow } from './config0.ts';
import type { LocalReplay } from './local-replay.ts';
import type { CreateReplicaConfig } from './types.ts';

export interface RoleWiring {
  ring: RingId;
  self: ReplicaId;
  inc: number;
  bus: Bus;
  env: Env;
  sm: StateMachine;
  store: AcceptorStore;
  snapshots: SnapshotStore;
  config: Configuration;
  members: readonly ReplicaId[];
  peers: readonly ReplicaId[];
  recovered: RecoveredState;
  startSlot: Slot;
  restoredFrom?: SnapshotMeta;
  replay?: LocalReplay;
  cfg: CreateReplicaConfig;
  report: (level: 'info' | 'warn' | 'error', kind: string, msg: string) => void;
  onApplyError: (err: unknown, slot: Slot) => void;
}

export function composeRoles(o: RoleWiring) {
  const send = (m: Message) => o.bus.send(m);
  const now = () => o.env.clock.now();
  const clock = {
    setTimeout: (fn: (...a: any[]) => void, ms: number) => o.env.clock.setTimeout(fn, ms),
    clearTimeout: (h: any) => o.env.clock.clearTimeout(h),
  };
  const inspect: Observer<InspectionEvent> | ((e: InspectionEvent) => void) | undefined = o.cfg.inspect;
  const common = { clock, ...(inspect ? { inspect } : {}) } as const;
  const base = { ring: o.ring, self: o.self, send, now } as const;
  // the standard machines unless the config injects others (tests and tools: CreateReplicaConfig.machines)
  const m = o.cfg.machines ?? {};

  const acceptor = createActor(m.acceptor ?? acceptorMachine, {
    ...common,
    input: {
      ring: o.ring,
      self: o.self,
      store: o.store,
      recovered: o.recovered,
      send,
      now,
      executedUpTo: o.startSlot,
      onStoreError: (err) =>
        o.report('error', 'acceptor', `store failed: ${err.message}; this acceptor no longer votes`),
      onStoreFull: (err) =>
        o.report('warn', 'acceptor-full', `store full: ${err.message}; writes wait for a snapshot and truncation`),
      ...(o.sm.acceptMessageFrom
        ? { acceptMessageFrom: (r: ReplicaId, c: Uint8Array | undefined) => o.sm.acceptMessageFrom!(r, c) }
        : {}),
      ...(o.cfg.options?.acceptor?.maxPromiseBytes ? { maxPromiseBytes: o.cfg.options.acceptor.maxPromiseBytes } : {}),
    },
  });
  const proposer = createActor(m.proposer ?? proposerMachine, {
    ...common,
    input: {
      ...base,
      inc: o.inc,
      members: o.members,
      configuration: o.config,
      maxRound: o.recovered.promised.round,
      wallNow: () => o.env.clock.wallMs?.() ?? Date.now(),
      options: o.cfg.options?.proposer ?? {},
      ...(o.startSlot > 0 ? { executedUpTo: o.startSlot } : {}),
    },
  });
  const learner = createActor(m.learner ?? learnerMachine, {
    ...common,
    input: {
      ...base,
      inc: o.inc,
      members: o.members,
      configuration: o.config,
      peers: o.peers,
      stateMachine: o.sm,
      options: retainWindow(o.cfg.options),
      executedUpTo: o.startSlot,
      ...(o.replay?.slots.length ? { replayed: o.replay.slots } : {}),
      onApplyError: o.onApplyError,
    },
  });
  // the snapshotter talks to the learner (which owns the state machine) and the acceptor by messages
  const snapshotter = createActor(m.snapshotter ?? snapshotterMachine, {
    ...common,
    input: {
      ring: o.ring,
      self: o.self,
      configuration: o.config,
      peers: o.peers,
      executedUpTo: o.startSlot,
      store: o.snapshots,
      send,
      now,
      options: o.cfg.options?.snapshotter ?? {},
      ...(o.restoredFrom ? { initial: o.restoredFrom } : {}),
    },
  });
  const elector = createActor(m.elector ?? electorMachine, {
    ...common,
    input: {
      ...base,
      members: o.members,
      configEpoch: o.config.epoch,
      peers: o.peers,
      random: () => o.env.random(),
      maxRound: o.recovered.promised.round,
      options: o.cfg.options?.elector ?? {},
      ...(o.sm.canBecomeLeader ? { canBecomeLeader: () => o.sm.canBecomeLeader!() } : {}),
    },
  });

  const configManager = createActor(m.configManager ?? configManagerMachine, {
    ...common,
    input: {
      ring: o.ring,
      self: o.self,
      inc: o.inc,
      send,
      now,
      configuration: o.config,
      options: o.cfg.options?.configManager ?? {},
    },
  });

  return { acceptor, proposer, learner, snapshotter, elector, configManager };
}

export type Roles = ReturnType<typeof composeRoles>;
