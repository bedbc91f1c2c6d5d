import { assertEvent, setup } from 'xstate';
import {
  type Configuration,
  type Message,
  type MessageOf,
  type ReplicaId,
  type RingId,
  CONTRACTS,
  ensures,
  memberSetProblem,
  quorumSize,
  requires,
  sameMembers,
} from '@decree/protocol';

export interface ConfigManagerOptions {
  /** a new member counts as caught up once it applied to within this many slots of the leader's decided slot */
  maxLagSlots: number;
  /** a change whose new members have not caught up (or whose majority is not reachable) by then fails */
  catchupTimeoutMs: number;
  /** a proposed change that neither took effect nor was refused by then fails (it may still take effect) */
  proposeTimeoutMs: number;
}

export const DEFAULT_CONFIG_MANAGER_OPTIONS: ConfigManagerOptions = {
  maxLagSlots: 256,
  catchupTimeoutMs: 30_000,
  proposeTimeoutMs: 30_000,
};

export interface ConfigManagerInput {
  ring: RingId;
  self: ReplicaId;
  /** this replica's incarnation: tags the config values its proposer proposes */
  inc: number;
  send: (msg: Message) => void;
  now: () => number;
  /** the configuration as of the executed slot at start (epoch 0: none yet) */
  configuration: Configuration;
  options?: Partial<ConfigManagerOptions>;
}

/** Error codes of a failed change (ConfigResult.code). */
export type ConfigErrorCode =
  | 'NOT_LEADER'
  | 'PENDING'
  | 'INVALID'
  | 'NO_CHANGE'
  | 'UNREACHABLE'
  | 'CATCHUP_TIMEOUT'
  | 'ABORTED';

export interface PendingChange {
  /** the change's id (the config value's firstId) */
  id: number;
  /** who asked (its client role gets the config-result) and under which id */
  requester: ReplicaId;
  requestId: number;
  /** the requester's incarnation, echoed in the result (a result for an earlier run is dropped there) */
  requestInc: number | undefined;
  members: readonly ReplicaId[];
  cookie: Uint8Array | undefined;
  /** members of the new set that are not in the current one: they must catch up first */
  joining: readonly ReplicaId[];
  startedAt: number;
  /** handed to the proposer (at proposedAt) */
  proposed: boolean;
  proposedAt: number;
  /** the reachability of the new set was checked on the first peer report */
  checked: boolean;
  /** the last peer report's view, for the error message of a timeout */
  lagging: string;
}

export interface ConfigManagerData {
  readonly ring: RingId;
  readonly self: ReplicaId;
  readonly inc: number;
  opts: ConfigManagerOptions;
  config: Configuration;
  pending: PendingChange | undefined;
  nextId: number;
  stats: { changesRequested: number; changesApplied: number; changesFailed: number; reconfigurations: number };
  readonly input: ConfigManagerInput;
}

export type ConfigManagerEvent =
  | MessageOf<'config-change'>
  | MessageOf<'reconfigured'>
  | MessageOf<'config-refused'>
  | MessageOf<'peer-progress'>
  | { type: 'tick' }
  | { type: 'stop' };

const hdr = (d: ConfigManagerData, to: ReplicaId) => ({ ring: d.ring, from: d.self, to });

function reply(
  d: ConfigManagerData,
  to: ReplicaId,
  requestId: number,
  inc: number | undefined,
  body: Omit<MessageOf<'config-result'>, 'type' | 'ring' | 'from' | 'to' | 'id' | 'inc'>,
): void {
  d.input.send({ type: 'config-result', ...hdr(d, to), id: requestId, ...(inc !== undefined ? { inc } : {}), ...body });
}

/** Guard rails checked before anything starts: a one-line reason, or undefined. */
export function validateChange(
  d: ConfigManagerData,
  members: readonly ReplicaId[],
): { code: ConfigErrorCode; error: string } | undefined {
  if (d.config.epoch === 0)
    return { code: 'INVALID', error: 'this replica has no configuration yet (bootstrap the cluster first)' };
  const problem = memberSetProblem(members);
  if (problem) return { code: 'INVALID', error: problem };
  if (sameMembers(members, d.config.members))
    return { code: 'NO_CHANGE', error: `the member set is already ${members.join(',')}` };
  return undefined;
}

/**
 * Starts a change: the joining members become observers (heartbeats, Decides) and the elector reports their progress.
 */
function begin(d: ConfigManagerData, m: MessageOf<'config-change'>): void {
  d.stats.changesRequested++;
  const joining = m.members.filter((x) => !d.config.members.includes(x));
  d.pending = {
    id: d.nextId++,
    requester: m.from,
    requestId: m.id,
    requestInc: m.inc,
    members: [...m.members],
    cookie: m.cookie,
    joining,
    startedAt: d.input.now(),
    proposed: false,
    proposedAt: 0,
    checked: false,
    lagging: '',
  };
  d.input.send({ type: 'set-observers', ...hdr(d, d.self), observers: joining });
  d.input.send({ type: 'watch-peers', ...hdr(d, d.self), observers: joining, watch: true });
}

function cleanup(d: ConfigManagerData): void {
  d.pending = undefined;
  d.input.send({ type: 'set-observers', ...hdr(d, d.self), observers: [] });
  d.input.send({ type: 'watch-peers', ...hdr(d, d.self), observers: [], watch: false });
}

/** The pending change failed: tell the requester and (when it certainly did not take effect) the state machine. */
export function fail(
  d: ConfigManagerData,
  code: ConfigErrorCode,
  error: string,
  extra: { maybeChosen?: boolean; leaderHint?: ReplicaId } = {},
): void {
  const p = d.pending;
  CONTRACTS && requires(p !== undefined, 'fail: a change is pending');
  if (!p) return;
  d.stats.changesFailed++;
  reply(d, p.requester, p.requestId, p.requestInc, {
    ok: false,
    code,
    error,
    ...(extra.maybeChosen ? { maybeChosen: true } : {}),
    ...(extra.leaderHint ? { leaderHint: extra.leaderHint } : {}),
  });
  if (!extra.maybeChosen)
    d.input.send({
      type: 'config-notice',
      ...hdr(d, d.self),
      kind: 'aborted',
      epoch: d.config.epoch,
      members: p.members,
      ...(p.cookie ? { cookie: p.cookie } : {}),
      reason: error,
    });
  cleanup(d);
}

/**
 * A peer report while catching up. Ready once every joining member applied to within maxLagSlots of
 * the decided slot and a majority of the new set answered within the election timeout; refused at
 * once when not even the optimistic count (joining members assumed to come) reaches a majority.
 */
export function onPeerProgress(d: ConfigManagerData, r: MessageOf<'peer-progress'>): 'wait' | 'propose' | 'failed' {
  const p = d.pending!;
  if (!r.leading) {
    fail(
      d,
      'NOT_LEADER',
      'this replica is not the leader',
      r.leader !== undefined && r.leader !== d.self ? { leaderHint: r.leader } : {},
    );
    return 'failed';
  }
  const fresh = new Map<ReplicaId, number>();
  for (const e of r.peers) if (e.ageMs <= r.windowMs) fresh.set(e.id, e.appliedUpTo);
  const reachable = p.members.filter((m) => m === d.self || fresh.has(m));
  const need = quorumSize({ epoch: 0, members: p.members, startSlot: 0 });
  if (!p.checked) {
    p.checked = true;
    const optimistic = new Set([...reachable, ...p.joining]);
    if (optimistic.size < need) {
      fail(
        d,
        'UNREACHABLE',
        `no majority of ${p.members.join(',')} is reachable: only ` +
          `${[...optimistic].join(',') || 'none'} of the ${need} needed`,
      );
      return 'failed';
    }
  }
  const lagging = p.joining.filter((m) => !fresh.has(m) || fresh.get(m)! + d.opts.maxLagSlots < r.decidedUpTo);
  p.lagging = lagging.map((m) => `${m} at ${fresh.get(m) ?? 'no answer'}`).join(', ');
  if (lagging.length > 0 || reachable.length < need) return 'wait';
  p.proposed = true;
  p.proposedAt = d.input.now();
  d.input.send({
    type: 'config-proposal',
    ...hdr(d, d.self),
    id: p.id,
    members: p.members,
    ...(p.cookie ? { cookie: p.cookie } : {}),
  });
  return 'propose';
}

/** A configuration took effect here (every replica hears it from its learner). */
export function onReconfigured(d: ConfigManagerData, m: MessageOf<'reconfigured'>): 'mine' | 'other' | 'old' {
  if (m.config.epoch <= d.config.epoch) return 'old';
  d.config = { epoch: m.config.epoch, members: [...m.config.members], startSlot: m.config.startSlot };
  d.stats.reconfigurations++;
  d.input.send({
    type: 'config-notice',
    ...hdr(d, d.self),
    kind: 'changed',
    epoch: d.config.epoch,
    members: d.config.members,
    ...(m.cookie ? { cookie: m.cookie } : {}),
  });
  CONTRACTS && ensures(d.config.epoch === m.config.epoch, 'reconfigured: the configuration moved forward');
  const p = d.pending;
  if (p && m.origin === d.self && m.inc === d.inc && m.firstId === p.id) {
    d.stats.changesApplied++;
    reply(d, p.requester, p.requestId, p.requestInc, {
      ok: true,
      epoch: d.config.epoch,
      members: d.config.members,
      slot: m.slot,
    });
    cleanup(d);
    return 'mine';
  }
  return 'other';
}

export const configManagerMachine = setup({
  types: {
    context: {} as ConfigManagerData,
    events: {} as ConfigManagerEvent,
    input: {} as ConfigManagerInput,
  },
  actions: {
    refuseInvalid: ({ context: d, event: m }) => {
      assertEvent(m, 'config-change');
      const bad = validateChange(d, m.members)!;
      reply(d, m.from, m.id, m.inc, { ok: false, ...bad });
    },
    refusePending: ({ context: d, event: m }) => {
      assertEvent(m, 'config-change');
      reply(d, m.from, m.id, m.inc, {
        ok: false,
        code: 'PENDING',
        error: `another configuration change (to ${d.pending?.members.join(',')}) is pending`,
      });
    },
    begin: ({ context, event }) => {
      assertEvent(event, 'config-change');
      begin(context, event);
    },
    reconfigured: ({ context, event }) => {
      assertEvent(event, 'reconfigured');
      onReconfigured(context, event);
    },
    refused: ({ context: d, event: m }) => {
      assertEvent(m, 'config-refused');
      if (!d.pending || m.id !== d.pending.id) return;
      fail(d, m.maybeChosen ? 'ABORTED' : 'NOT_LEADER', m.reason, {
        maybeChosen: m.maybeChosen,
        ...(m.leaderHint ? { leaderHint: m.leaderHint } : {}),
      });
    },
    peerProgress: ({ context: d, event }) => {
      assertEvent(event, 'peer-progress');
      if (d.pending) onPeerProgress(d, event);
    },
    catchupTimeout: ({ context: d }) => {
      const p = d.pending!;
      fail(
        d,
        'CATCHUP_TIMEOUT',
        `the new members did not catch up within ` +
          `${d.opts.catchupTimeoutMs} ms (${p.lagging || 'no report from the elector'})`,
      );
    },
    proposeTimeout: ({ context: d }) => {
      fail(d, 'ABORTED', `the change was proposed but did not take effect within ${d.opts.proposeTimeoutMs} ms`, {
        maybeChosen: true,
      });
    },
  },
  guards: {
    invalid: ({ context, event }) => {
      assertEvent(event, 'config-change');
      return validateChange(context, event.members) !== undefined;
    },
    proposedNow: ({ context }) => context.pending !== undefined && context.pending.proposed,
    noPending: ({ context }) => context.pending === undefined,
    catchupExpired: ({ context: d }) =>
      d.pending !== undefined && d.input.now() - d.pending.startedAt > d.opts.catchupTimeoutMs,
    proposeExpired: ({ context: d }) =>
      d.pending !== undefined && d.input.now() - d.pending.proposedAt > d.opts.proposeTimeoutMs,
  },
}).createMachine({
  id: 'config-manager',
  context: ({ input }) => ({
    ring: input.ring,
    self: input.self,
    inc: input.inc,
    opts: { ...DEFAULT_CONFIG_MANAGER_OPTIONS, ...input.options },
    config: {
      epoch: input.configuration.epoch,
      members: [...input.configuration.members],
      startSlot: input.configuration.startSlot,
    },
    pending: undefined,
    nextId: 1,
    stats: { changesRequested: 0, changesApplied: 0, changesFailed: 0, reconfigurations: 0 },
    input,
  }),
  initial: 'stable',
  on: {
    stop: '.stopped',
  },
  states: {
    /** no change of ours in progress; every configuration taking effect is noted */
    stable: {
      on: {
        'config-change': [
          { guard: 'invalid', actions: 'refuseInvalid' },
          { target: 'catchingUp', actions: 'begin' },
        ],
        reconfigured: { actions: 'reconfigured' },
      },
    },
    /** the joining members are observers; waiting until they caught up and a majority of the new set answers */
    catchingUp: {
      on: {
        'config-change': [{ guard: 'invalid', actions: 'refuseInvalid' }, { actions: 'refusePending' }],
        'peer-progress': { actions: 'peerProgress' },
        reconfigured: { actions: 'reconfigured' },
        tick: { guard: 'catchupExpired', target: 'stable', actions: 'catchupTimeout' },
      },
      always: [
        { guard: 'noPending', target: 'stable' },
        { guard: 'proposedNow', target: 'proposed' },
      ],
    },
    /** the config value is with the proposer; its execution (or a refusal) ends the change */
    proposed: {
      always: [{ guard: 'noPending', target: 'stable' }],
      on: {
        'config-change': [{ guard: 'invalid', actions: 'refuseInvalid' }, { actions: 'refusePending' }],
        reconfigured: { actions: 'reconfigured' },
        'config-refused': { actions: 'refused' },
        tick: { guard: 'proposeExpired', target: 'stable', actions: 'proposeTimeout' },
      },
    },
    stopped: { type: 'final' },
  },
});
