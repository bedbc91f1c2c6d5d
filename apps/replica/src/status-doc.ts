/**
 * What the status server knows: this process's replicas (StatusDoc, /status.json), the leader
 * changes it saw, and the cluster as seen from here (ClusterView, /cluster.json): the peers' own
 * /status.json fetched over HTTP, with short timeouts.
 */
import type { Replica } from '@decree/replica';
import { activePaths, type EventLoopDelaySummary, type LatencyWindow } from '@decree/telemetry';

/** The role machines, by the names of their statecharts (docs/statecharts/<role>.md). */
export const ROLES = ['elector', 'proposer', 'acceptor', 'learner', 'snapshotter', 'config-manager'] as const;
export type RoleName = (typeof ROLES)[number];

export const roleActor = (r: Replica, role: RoleName) => (role === 'config-manager' ? r.configManager : r[role]);

export interface LeaderChange {
  /** ms since the epoch, when this replica learnt of it */
  at: number;
  /** the leader known before (undefined at start) */
  from: string | undefined;
  to: string;
}

export interface PeerHealthDoc {
  id: string;
  connected: boolean;
  inFlight: number;
  lastAcceptedSlot: number;
  /** the vote payload as text when it is printable, else hex (at most 64 bytes shown) */
  votePayload: string | undefined;
  lastVoteAt: number | undefined;
}

export interface Quantiles {
  p50: number;
  p99: number;
  samples: number;
}

/** What /status.json returns. */
export interface StatusDoc {
  id: string;
  time: number;
  /** this process's event-loop delay (ms) over the last 1 to 2 minutes (absent before the first sample) */
  eventLoopDelay?: EventLoopDelaySummary;
  rings: Array<{
    ring: string;
    leader: string | undefined;
    isLeader: boolean;
    role: string;
    ballot: unknown;
    promised: unknown;
    states: { elector: string; proposer: string; acceptor: string; learner: string; configManager: string };
    /** the active state paths of each role machine, outermost first ('leading', 'leading.steady') */
    active: Record<RoleName, string[]>;
    chosenUpTo: number;
    executedUpTo: number;
    logSlots: number;
    logBytes: number;
    commandsExecuted: number;
    elections: number;
    leaderships: number;
    latestSnapshotSlot: number;
    members: readonly string[];
    pendingSubmissions: number;
    /** peer health as this replica sees it (RSL GetReplicaHealth; leader-side figures are 0 on followers) */
    peers: PeerHealthDoc[];
    /** commit latency (submit to executed, commands submitted here) over the last minute */
    latency: Quantiles | undefined;
    /** the latest leader changes this replica saw, oldest first */
    leaderChanges: LeaderChange[];
  }>;
}

export type RingDoc = StatusDoc['rings'][number];

/** Extra figures the status server keeps per replica (same order as the replicas). */
export interface DocExtras {
  latency?: readonly (LatencyWindow | undefined)[];
  leaderChanges?: readonly (readonly LeaderChange[])[];
  /** the process's event-loop delay */
  eventLoopDelay?: { summary(): EventLoopDelaySummary | undefined };
}

export function payloadText(p: Uint8Array | undefined): string | undefined {
  if (!p) return undefined;
  const shown = p.subarray(0, 64);
  const more = p.length > shown.length ? '…' : '';
  if (shown.every((b) => b >= 0x20 && b < 0x7f)) return new TextDecoder().decode(shown) + more;
  return `0x${Buffer.from(shown).toString('hex')}${more}`;
}

export function statusDoc(replicas: readonly Replica[], extras: DocExtras = {}): StatusDoc {
  const eld = extras.eventLoopDelay?.summary();
  return {
    id: replicas[0]?.id ?? '',
    time: Date.now(),
    ...(eld ? { eventLoopDelay: eld } : {}),
    rings: replicas.map((r, i) => {
      const s = r.status();
      const st = r.statistics();
      return {
        ring: s.ring,
        leader: s.leader,
        isLeader: r.isLeader(),
        role: s.role,
        ballot: s.ballot,
        promised: s.promised,
        states: s.states,
        active: Object.fromEntries(
          ROLES.map((role) => [role, activePaths(roleActor(r, role).getSnapshot().value)]),
        ) as Record<RoleName, string[]>,
        chosenUpTo: s.chosenUpTo,
        executedUpTo: s.executedUpTo,
        logSlots: Math.max(0, s.chosenUpTo - st.snapshots.truncatedBelow),
        logBytes: st.log.bytes,
        commandsExecuted: st.commandsExecuted,
        elections: st.elections,
        leaderships: st.leaderships,
        latestSnapshotSlot: st.snapshots.latestSlot,
        members: s.members,
        pendingSubmissions: s.pendingSubmissions,
        peers: r.peerHealth().map((h) => ({
          id: h.id,
          connected: h.connected,
          inFlight: h.inFlight,
          lastAcceptedSlot: h.lastAcceptedSlot,
          votePayload: payloadText(h.votePayload),
          lastVoteAt: h.lastVoteAt,
        })),
        latency: extras.latency?.[i]?.quantiles(),
        leaderChanges: [...(extras.leaderChanges?.[i] ?? [])],
      };
    }),
  };
}

/** The last `max` leader changes of one replica, found by sampling currentLeader(). */
export class LeaderChanges {
  readonly list: LeaderChange[] = [];
  private known: string | undefined;

  constructor(
    private readonly replica: Pick<Replica, 'currentLeader'>,
    private readonly max = 20,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Call often (every 100 ms): records a change when a leader other than the last one known appears. */
  sample(): void {
    const l = this.replica.currentLeader();
    if (l === undefined || l === this.known) return;
    this.list.push({ at: this.clock(), from: this.known, to: l });
    if (this.list.length > this.max) this.list.shift();
    this.known = l;
  }
}

// ------------------------------------------------------------------ the cluster as seen from here

/** A member of the cluster config with its status page (no url: it has none). */
export interface PeerAddress {
  id: string;
  url?: string;
}

export interface PeerResult {
  at: number;
  doc?: StatusDoc;
  error?: string;
  /** when its page last answered */
  lastSeen?: number;
}

/**
 * Fetches the peers' /status.json (each at most once at a time, with a timeout) and keeps the
 * latest answer or error of each.
 */
export class PeerPoller {
  readonly results = new Map<string, PeerResult>();
  private readonly busy = new Set<string>();

  constructor(
    readonly peers: readonly PeerAddress[],
    private readonly timeoutMs = 600,
  ) {}

  /** Starts a fetch of every peer not being fetched already; resolves when they are all done. */
  async poll(): Promise<void> {
    await Promise.all(
      this.peers.map(async (p) => {
        if (!p.url || this.busy.has(p.id)) return;
        this.busy.add(p.id);
        const prev = this.results.get(p.id);
        try {
          const res = await fetch(new URL('status.json', p.url), { signal: AbortSignal.timeout(this.timeoutMs) });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const doc = (await res.json()) as StatusDoc;
          this.results.set(p.id, { at: Date.now(), doc, lastSeen: Date.now() });
        } catch (e) {
          const err = e as Error;
          const cause = (err.cause as { code?: string } | undefined)?.code;
          this.results.set(p.id, {
            at: Date.now(),
            error: err.name === 'TimeoutError' ? `no answer in ${this.timeoutMs} ms` : (cause ?? err.message),
            ...(prev?.lastSeen !== undefined ? { lastSeen: prev.lastSeen } : {}),
          });
        } finally {
          this.busy.delete(p.id);
        }
      }),
    );
  }
}

export type MemberState = 'self' | 'up' | 'unreachable' | 'unknown';

export interface MemberView {
  id: string;
  state: MemberState;
  /** why it is unreachable ('ECONNREFUSED', 'no answer in 600 ms'), or 'no status page' */
  error?: string;
  lastSeen?: number;
  /** from its own status: leader, follower, candidate */
  role?: string;
  executedUpTo?: number;
  /** the leader's executed slot minus this member's */
  lag?: number;
  /** peer health as `healthFrom` (the leader, else this replica) sees this member */
  connected?: boolean;
  lastAcceptedSlot?: number;
  votePayload?: string;
  healthFrom?: string;
  latency?: Quantiles;
  /** active state paths of its role machines */
  active?: Record<RoleName, string[]>;
}

export interface ClusterRing {
  ring: string;
  /** the leader as this replica knows it */
  leader: string | undefined;
  leaderExecuted: number | undefined;
  members: MemberView[];
  leaderChanges: LeaderChange[];
}

export interface ClusterView {
  id: string;
  time: number;
  rings: ClusterRing[];
}

/** The cluster from this replica's doc, the configured members and the peers' latest answers. */
export function clusterView(
  self: StatusDoc,
  peers: readonly PeerAddress[],
  results: ReadonlyMap<string, PeerResult>,
): ClusterView {
  const rings = self.rings.map((mine): ClusterRing => {
    const ids = [...new Set([...peers.map((p) => p.id), ...mine.members, self.id])];
    const docOf = (id: string): RingDoc | undefined =>
      id === self.id ? mine : results.get(id)?.doc?.rings.find((x) => x.ring === mine.ring);
    const reachable = (id: string) => id === self.id || results.get(id)?.doc !== undefined;
    const leader = mine.leader;
    const leaderDoc = leader !== undefined && reachable(leader) ? docOf(leader) : undefined;
    const executed = ids.filter(reachable).map((id) => docOf(id)?.executedUpTo ?? 0);
    const leaderExecuted = leaderDoc?.executedUpTo ?? (executed.length ? Math.max(...executed) : undefined);
    const health = leaderDoc?.isLeader ? leaderDoc : mine;
    const members = ids.map((id): MemberView => {
      const peer = peers.find((p) => p.id === id);
      const res = results.get(id);
      const state: MemberState =
        id === self.id ? 'self' : res?.doc ? 'up' : peer?.url ? (res ? 'unreachable' : 'unknown') : 'unknown';
      const doc = state === 'self' || state === 'up' ? docOf(id) : undefined;
      const h = health.peers.find((p) => p.id === id);
      const lastSeen = res?.lastSeen;
      return {
        id,
        state,
        ...(state === 'unreachable' ? { error: res?.error ?? '' } : {}),
        ...(state === 'unknown' && !peer?.url && id !== self.id ? { error: 'no status page' } : {}),
        ...(lastSeen !== undefined && state === 'unreachable' ? { lastSeen } : {}),
        ...(doc
          ? {
              role: doc.role,
              executedUpTo: doc.executedUpTo,
              ...(leaderExecuted !== undefined ? { lag: Math.max(0, leaderExecuted - doc.executedUpTo) } : {}),
              ...(doc.latency ? { latency: doc.latency } : {}),
              active: doc.active,
            }
          : {}),
        ...(h
          ? {
              connected: h.connected,
              lastAcceptedSlot: h.lastAcceptedSlot,
              ...(h.votePayload !== undefined ? { votePayload: h.votePayload } : {}),
              healthFrom: health === mine ? self.id : leader!,
            }
          : {}),
      };
    });
    return { ring: mine.ring, leader, leaderExecuted, members, leaderChanges: mine.leaderChanges };
  });
  return { id: self.id, time: self.time, rings };
}
