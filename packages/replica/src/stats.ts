import type { Actor } from 'xstate';
import type { Bus, Transport } from '@decree/bus';
import type { AcceptorStore, Configuration, LeaderRole, ReplicaId, RingId, Slot } from '@decree/protocol';
import type { acceptorMachine } from '@decree/acceptor';
import type { proposerMachine } from '@decree/proposer';
import type { learnerMachine } from '@decree/learner';
import type { electorMachine } from '@decree/elector';
import type { configManagerMachine } from '@decree/config-manager';
import type { snapshotterMachine } from '@decree/snapshotter';
import type { PeerHealth, ReplicaStatistics, ReplicaStatus } from './types.ts';

/** A state value as a dotted path: 'serving.writing', 'leading.steady' (parallel regions joined by commas). */
export function statePath(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object')
    return Object.entries(v as Record<string, unknown>)
      .map(([k, sub]) => (sub === undefined ? k : `${k}.${statePath(sub)}`))
      .join(',');
  return String(v);
}

/** The top-level state of a state value ('leading' for 'leading.steady'). */
export const topState = (v: unknown): string =>
  typeof v === 'string' ? v : v && typeof v === 'object' ? (Object.keys(v)[0] ?? '') : String(v);

export const stateName = (a: Actor<any>): string => statePath(a.getSnapshot().value);

/** What the figures are read from: the roles' actors and a few of the replica's own fields. */
export interface StatsView {
  id: ReplicaId;
  ring: RingId;
  role: LeaderRole;
  store: AcceptorStore;
  bus: Bus;
  transport: Transport | undefined;
  members: readonly ReplicaId[];
  config: Configuration;
  pendingSubmissions: number;
  fatal: Error | undefined;
  elector: Actor<typeof electorMachine>;
  proposer: Actor<typeof proposerMachine>;
  acceptor: Actor<typeof acceptorMachine>;
  learner: Actor<typeof learnerMachine>;
  snapshotter: Actor<typeof snapshotterMachine>;
  configManager: Actor<typeof configManagerMachine>;
  isLeader(): boolean;
  currentLeader(): ReplicaId | undefined;
  highestChosenSlot(): Slot;
}

export function statisticsOf(v: StatsView): ReplicaStatistics {
  const sn = v.snapshotter.getSnapshot().context;
  const l = v.learner.getSnapshot().context.stats;
  const p = v.proposer.getSnapshot().context.stats;
  const a = v.acceptor.getSnapshot().context.stats;
  return {
    commandsExecuted: l.commandsExecuted,
    slotsExecuted: l.slotsExecuted,
    slotsProposed: p.slotsProposed,
    commandsProposed: p.commandsProposed,
    slotsChosen: p.slotsChosen,
    meanVotingMs: p.slotsChosen ? p.votingMs / p.slotsChosen : 0,
    elections: p.elections,
    leaderships: p.leaderships,
    log: v.store.stats(),
    logUsage: v.store.usage?.(),
    acceptor: {
      state: stateName(v.acceptor),
      fullWrites: a.fullWrites,
      droppedReplies: a.droppedReplies,
      promisePages: a.promisePages,
    },
    busyRefusals: p.busyRefusals,
    acceptResends: p.acceptResends,
    promisePagesPulled: p.promisePagesPulled,
    busDrops: v.bus.dropped,
    catchupRequests: l.catchupRequests,
    applyErrors: l.applyErrors,
    snapshots: {
      taken: sn.stats.taken,
      saved: sn.stats.saved,
      refused: sn.stats.refused,
      installed: sn.stats.installed,
      latestSlot: sn.latest?.slot ?? 0,
      truncatedBelow: sn.stats.truncatedBelow,
      chunksSent: sn.stats.chunksSent,
      chunksReceived: sn.stats.chunksReceived,
      badChunks: sn.stats.badChunks,
      transfersStartedOver: sn.stats.transfersStartedOver,
    },
  };
}

export function statusOf(v: StatsView): ReplicaStatus {
  const p = v.proposer.getSnapshot().context;
  const a = v.acceptor.getSnapshot().context;
  const l = v.learner.getSnapshot().context;
  return {
    id: v.id,
    ring: v.ring,
    role: v.role,
    leader: v.currentLeader(),
    ballot: v.isLeader() ? p.ballot : v.elector.getSnapshot().context.leaderBallot,
    promised: a.promised,
    executedUpTo: l.executedUpTo,
    chosenUpTo: v.highestChosenSlot(),
    members: [...v.members],
    configEpoch: v.config.epoch,
    states: {
      elector: stateName(v.elector),
      proposer: stateName(v.proposer),
      acceptor: stateName(v.acceptor),
      learner: stateName(v.learner),
      configManager: stateName(v.configManager),
    },
    pendingSubmissions: v.pendingSubmissions,
    ...(v.fatal ? { fatal: v.fatal.message } : {}),
  };
}

/** Health of each peer as this replica sees it (leader-side figures are zero on followers). */
export function peerHealthOf(v: StatsView): PeerHealth[] {
  const p = v.proposer.getSnapshot().context;
  const e = v.elector.getSnapshot().context;
  const leading = v.isLeader();
  return v.members
    .filter((m) => m !== v.id)
    .map((id) => {
      const last = p.peers.get(id)?.lastAcceptedSlot ?? 0;
      const vote = e.votes.get(id);
      return {
        id,
        connected: v.transport ? v.transport.isConnected(id) : true,
        inFlight: leading ? Math.max(0, p.nextSlot - 1 - last) : 0,
        lastAcceptedSlot: last,
        votePayload: vote?.payload,
        lastVoteAt: vote?.ackAt,
      };
    });
}
