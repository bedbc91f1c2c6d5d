import { and, assertEvent, setup } from 'xstate';
import {
  type Ballot,
  type Message,
  type MessageOf,
  type ReplicaId,
  type RingId,
  type Slot,
  CONTRACTS,
  compareBallots,
  requires,
} from '@decree/protocol';

export interface ElectorOptions {
  /** a follower that hears no leader for a random time in [min, max] campaigns */
  electionTimeoutMinMs: number;
  electionTimeoutMaxMs: number;
  heartbeatMs: number;
  /**
   * Ask the members before campaigning (pre-vote): a replica that heard a live leader within the
   * election timeout says no, so a restarted or cut-off replica does not depose a healthy leader.
   */
  preVote: boolean;
}

// Seconds-scale like RSL: one event loop hosts every role, and
// a long GC pause or a big batch must not cost the leadership.
export const DEFAULT_ELECTOR_OPTIONS: ElectorOptions = {
  electionTimeoutMinMs: 500,
  electionTimeoutMaxMs: 1000,
  heartbeatMs: 100,
  preVote: true,
};

export interface ElectorInput {
  ring: RingId;
  self: ReplicaId;
  members: readonly ReplicaId[];
  send: (msg: Message) => void;
  now: () => number;
  /** uniform in [0, 1): the injected RNG */
  random: () => number;
  options?: Partial<ElectorOptions>;
  /** RSL CanBecomePrimary: the state machine may veto leadership and hand a cookie to followers */
  canBecomeLeader?: () => boolean | { ok: boolean; cookie?: Uint8Array };
  /** the highest round known at start (the local acceptor's durable promise) */
  maxRound?: number;
  /** the configuration number of `members` (they change with the proposer's leader-state) */
  configEpoch?: number;
  /**
   * Every replica of the ring: a heartbeat from one of them is honoured even when this replica's
   * configuration does not name it yet (a lagging replica follows the leader of a newer configuration
   * instead of campaigning against it). Others are ignored unless they are members.
   */
  peers?: readonly ReplicaId[];
}

export interface PeerVote {
  ackAt: number;
  appliedUpTo: Slot;
  payload: Uint8Array | undefined;
}

export interface ElectorData {
  readonly ring: RingId;
  readonly self: ReplicaId;
  members: readonly ReplicaId[];
  configEpoch: number;
  /** replicas catching up before a configuration change (the config-manager names them): they get heartbeats */
  observers: readonly ReplicaId[];
  /** the config-manager wants a peer-progress report on every heartbeat tick */
  watch: boolean;
  opts: ElectorOptions;
  leader: ReplicaId | undefined;
  leaderBallot: Ballot;
  maxRound: number;
  decidedUpTo: Slot;
  executedUpTo: Slot;
  proposerState: 'follower' | 'preparing' | 'leading';
  /** the ballot this replica campaigns with (while campaigning) */
  campaignBallot: Ballot;
  cookie: Uint8Array | undefined;
  leaderSince: number;
  lastHeardLeaderAt: number;
  votes: Map<ReplicaId, PeerVote>;
  payload: Uint8Array | undefined;
  suppressUntil: number;
  /** the round of the pre-vote under way, and who granted it */
  preVoteRound: number;
  preVotes: Set<ReplicaId>;
  stats: {
    campaigns: number;
    heartbeatsSent: number;
    heartbeatsReceived: number;
    quorumLosses: number;
    preVotes: number;
    preVotesDenied: number;
  };
  readonly input: ElectorInput;
}

export type ElectorEvent =
  | MessageOf<'heartbeat'>
  | MessageOf<'heartbeat-ack'>
  | MessageOf<'leader-state'>
  | { type: 'promote' }
  | { type: 'relinquish' }
  | { type: 'set-timeout'; minMs: number; maxMs: number }
  | { type: 'set-payload'; payload: Uint8Array | undefined }
  /** send a heartbeat round now (read-index confirms leadership with its acks) */
  | { type: 'beat-now' }
  | { type: 'set-members'; members: readonly ReplicaId[] }
  | MessageOf<'watch-peers'>
  | MessageOf<'pre-vote'>
  | MessageOf<'pre-vote-ack'>
  | { type: 'stop' };

const hdr = (d: ElectorData, to: ReplicaId) => ({ ring: d.ring, from: d.self, to });
const quorumOf = (n: number) => Math.floor(n / 2) + 1;

function validHeartbeat(d: ElectorData, m: MessageOf<'heartbeat'>): boolean {
  return (
    m.from !== d.self &&
    (d.members.includes(m.from) || !!d.input.peers?.includes(m.from)) &&
    compareBallots(m.ballot, d.leaderBallot) >= 0 &&
    m.ballot.round >= d.maxRound
  );
}

function recordHeartbeat(d: ElectorData, m: MessageOf<'heartbeat'>): void {
  CONTRACTS && requires(m.ballot.leader === m.from, "heartbeat: the ballot is the sender's");
  d.stats.heartbeatsReceived++;
  d.leader = m.from;
  d.leaderBallot = m.ballot;
  if (m.ballot.round > d.maxRound) d.maxRound = m.ballot.round;
  if (m.decidedUpTo > d.decidedUpTo) d.decidedUpTo = m.decidedUpTo;
  d.lastHeardLeaderAt = d.input.now();
  d.input.send({
    type: 'heartbeat-ack',
    ...hdr(d, m.from),
    ballot: m.ballot,
    appliedUpTo: d.executedUpTo,
    ...(d.payload ? { payload: d.payload } : {}),
  });
}

function canCampaign(d: ElectorData): boolean {
  if (!d.members.includes(d.self)) return false;
  if (d.input.now() < d.suppressUntil) return false;
  return vetted(d);
}

/** Asks the state machine (RSL CanBecomePrimary); keeps the cookie it hands out. */
function vetted(d: ElectorData): boolean {
  const v = d.input.canBecomeLeader?.();
  if (v === undefined || v === true) {
    d.cookie = undefined;
    return true;
  }
  if (v === false) return false;
  d.cookie = v.cookie;
  return v.ok;
}

function sendHeartbeats(d: ElectorData): void {
  const beat = (m: ReplicaId) => {
    d.stats.heartbeatsSent++;
    d.input.send({
      type: 'heartbeat',
      ...hdr(d, m),
      ballot: d.leaderBallot,
      decidedUpTo: d.decidedUpTo,
      ...(d.cookie ? { cookie: d.cookie } : {}),
    });
  };
  for (const m of d.members) if (m !== d.self) beat(m);
  for (const o of d.observers) if (o !== d.self && !d.members.includes(o)) beat(o);
}

/** For the config-manager: how far each peer has applied, and how long ago it answered. */
function reportPeers(d: ElectorData, leading: boolean): void {
  const now = d.input.now();
  const peers = [...d.votes].map(([id, v]) => ({
    id,
    appliedUpTo: v.appliedUpTo,
    ageMs: Math.max(0, Math.round(now - v.ackAt)),
  }));
  d.input.send({
    type: 'peer-progress',
    ...hdr(d, d.self),
    leading,
    ...(d.leader !== undefined ? { leader: d.leader } : {}),
    decidedUpTo: d.decidedUpTo,
    windowMs: Math.round(d.opts.electionTimeoutMaxMs),
    peers: leading ? peers : [],
  });
}

/** CheckQuorum: a leader that has not heard a majority for an election timeout steps down. */
function quorumLost(d: ElectorData): boolean {
  const now = d.input.now();
  const window = d.opts.electionTimeoutMaxMs;
  if (now - d.leaderSince < window) return false;
  let n = d.members.includes(d.self) ? 1 : 0;
  for (const [id, v] of d.votes) if (id !== d.self && d.members.includes(id) && now - v.ackAt <= window) n++;
  return n < quorumOf(d.members.length);
}

export const electorMachine = setup({
  types: {
    context: {} as ElectorData,
    events: {} as ElectorEvent,
    input: {} as ElectorInput,
  },
  delays: {
    election: ({ context: d }) =>
      d.opts.electionTimeoutMinMs + d.input.random() * (d.opts.electionTimeoutMaxMs - d.opts.electionTimeoutMinMs),
    heartbeat: ({ context: d }) => d.opts.heartbeatMs,
  },
  actions: {
    recordHeartbeat: ({ context, event }) => {
      assertEvent(event, 'heartbeat');
      recordHeartbeat(context, event);
    },
    preCampaign: ({ context: d }) => {
      d.stats.preVotes++;
      d.preVoteRound = d.maxRound + 1;
      d.preVotes = new Set([d.self]);
      for (const m of d.members)
        if (m !== d.self) d.input.send({ type: 'pre-vote', ...hdr(d, m), round: d.preVoteRound });
    },
    preVoteAck: ({ context: d, event: m }) => {
      assertEvent(m, 'pre-vote-ack');
      if (m.round === d.preVoteRound && m.granted && d.members.includes(m.from)) d.preVotes.add(m.from);
      else if (m.round === d.preVoteRound && !m.granted) d.stats.preVotesDenied++;
    },
    /** a peer asks whether it may campaign: yes unless this replica leads, or heard a live leader lately */
    answerPreVote: ({ context: d, event: m }) => {
      assertEvent(m, 'pre-vote');
      const quiet =
        d.input.now() - d.lastHeardLeaderAt >= d.opts.electionTimeoutMinMs - d.opts.heartbeatMs ||
        d.leader === undefined;
      const granted =
        d.proposerState !== 'leading' && quiet && (d.members.includes(m.from) || !!d.input.peers?.includes(m.from));
      d.input.send({ type: 'pre-vote-ack', ...hdr(d, m.from), round: m.round, granted });
    },
    campaign: ({ context: d }) => {
      d.stats.campaigns++;
      vetted(d); // refresh the cookie
      d.leader = undefined;
      d.campaignBallot = { round: d.maxRound + 1, leader: d.self };
      d.input.send({
        type: 'campaign',
        ...hdr(d, d.self),
        round: d.maxRound + 1,
        ...(d.cookie ? { cookie: d.cookie } : {}),
      });
    },
    leaderState: ({ context: d, event: m }) => {
      assertEvent(m, 'leader-state');
      d.proposerState = m.state;
      if (m.state === 'preparing') d.campaignBallot = m.ballot;
      if (m.maxRound > d.maxRound) d.maxRound = m.maxRound;
      if (m.decidedUpTo > d.decidedUpTo || m.state === 'leading')
        d.decidedUpTo = Math.max(d.decidedUpTo, m.decidedUpTo);
      d.executedUpTo = Math.max(d.executedUpTo, m.executedUpTo);
      if (m.config && m.config.epoch > d.configEpoch) {
        d.configEpoch = m.config.epoch;
        d.members = [...m.config.members];
        d.observers = d.observers.filter((o) => !d.members.includes(o));
      }
      if (m.state === 'leading') {
        d.leader = d.self;
        d.leaderBallot = m.ballot;
      } else if (m.leaderHint !== undefined && m.leaderHint !== d.self) {
        d.leader = m.leaderHint;
      } else if (d.leader === d.self) d.leader = undefined;
      if (m.relinquished) d.suppressUntil = d.input.now() + d.opts.electionTimeoutMaxMs;
    },
    becameLeader: ({ context: d }) => {
      d.leaderSince = d.input.now();
      d.votes.clear();
      sendHeartbeats(d);
    },
    beatNow: ({ context: d }) => sendHeartbeats(d),
    heartbeatTick: ({ context: d }) => {
      sendHeartbeats(d);
      if (d.watch) reportPeers(d, true);
      if (quorumLost(d)) {
        d.stats.quorumLosses++;
        d.input.send({ type: 'resign', ...hdr(d, d.self), reason: 'no majority heard within the election timeout' });
        d.leaderSince = d.input.now();
      }
    },
    ack: ({ context: d, event: m }) => {
      assertEvent(m, 'heartbeat-ack');
      if (compareBallots(m.ballot, d.leaderBallot) !== 0) return;
      d.votes.set(m.from, { ackAt: d.input.now(), appliedUpTo: m.appliedUpTo, payload: m.payload });
    },
    resignForHigher: ({ context: d }) => {
      d.input.send({ type: 'resign', ...hdr(d, d.self), reason: 'a leader of a higher ballot is alive' });
    },
    relinquish: ({ context: d }) => {
      d.suppressUntil = d.input.now() + d.opts.electionTimeoutMaxMs;
      d.input.send({ type: 'resign', ...hdr(d, d.self), reason: 'relinquished' });
    },
    setTimeout: ({ context: d, event: e }) => {
      assertEvent(e, 'set-timeout');
      CONTRACTS && requires(e.minMs > 0 && e.maxMs >= e.minMs, 'set-timeout: 0 < min <= max');
      d.opts = { ...d.opts, electionTimeoutMinMs: e.minMs, electionTimeoutMaxMs: e.maxMs };
    },
    setPayload: ({ context: d, event }) => {
      assertEvent(event, 'set-payload');
      d.payload = event.payload;
    },
    setMembers: ({ context: d, event }) => {
      assertEvent(event, 'set-members');
      d.members = [...event.members];
    },
    reportLeft: ({ context: d }) => {
      if (d.watch) reportPeers(d, false);
    },
    watchPeers: ({ context: d, event: e, self }) => {
      assertEvent(e, 'watch-peers');
      d.watch = e.watch;
      d.observers = e.observers.filter((o) => !d.members.includes(o));
      // answer at once: a follower says so (the config-manager refuses the change), a leader reports
      if (e.watch) reportPeers(d, self.getSnapshot().matches('leader'));
    },
    clearPromotionSuppression: ({ context: d }) => {
      d.suppressUntil = 0;
    },
  },
  guards: {
    validHeartbeat: ({ context, event }) => {
      assertEvent(event, 'heartbeat');
      return validHeartbeat(context, event);
    },
    /** while campaigning, only a leader of a higher ballot than ours makes us give up */
    beatsCampaign: ({ context: d, event: m }) => {
      assertEvent(m, 'heartbeat');
      return validHeartbeat(d, m) && compareBallots(m.ballot, d.campaignBallot) > 0;
    },
    higherHeartbeat: ({ context: d, event: m }) => {
      assertEvent(m, 'heartbeat');
      return m.from !== d.self && compareBallots(m.ballot, d.leaderBallot) > 0;
    },
    canCampaign: ({ context }) => canCampaign(context),
    preVoteOn: ({ context }) => context.opts.preVote,
    preVoteMajority: ({ context: d }) => d.preVotes.size >= quorumOf(d.members.length),
    mayPromote: ({ context }) => context.members.includes(context.self) && vetted(context),
    nowLeading: ({ event }) => {
      assertEvent(event, 'leader-state');
      return event.state === 'leading';
    },
    nowPreparing: ({ event }) => {
      assertEvent(event, 'leader-state');
      return event.state === 'preparing';
    },
    nowFollower: ({ event }) => {
      assertEvent(event, 'leader-state');
      return event.state === 'follower';
    },
  },
}).createMachine({
  id: 'elector',
  context: ({ input }) => ({
    ring: input.ring,
    self: input.self,
    members: [...input.members],
    configEpoch: input.configEpoch ?? 1,
    observers: [],
    watch: false,
    opts: { ...DEFAULT_ELECTOR_OPTIONS, ...input.options },
    leader: undefined,
    leaderBallot: { round: 0, leader: '' },
    maxRound: input.maxRound ?? 0,
    decidedUpTo: 0,
    executedUpTo: 0,
    proposerState: 'follower',
    campaignBallot: { round: 0, leader: input.self },
    cookie: undefined,
    leaderSince: 0,
    lastHeardLeaderAt: 0,
    votes: new Map(),
    payload: undefined,
    suppressUntil: 0,
    preVoteRound: 0,
    preVotes: new Set(),
    stats: { campaigns: 0, heartbeatsSent: 0, heartbeatsReceived: 0, quorumLosses: 0, preVotes: 0, preVotesDenied: 0 },
    input,
  }),
  initial: 'follower',
  on: {
    'set-timeout': { actions: 'setTimeout' },
    'set-payload': { actions: 'setPayload' },
    'set-members': { actions: 'setMembers' },
    'watch-peers': { actions: 'watchPeers' },
    'pre-vote': { actions: 'answerPreVote' },
    stop: '.stopped',
  },
  states: {
    follower: {
      after: {
        election: [
          { guard: and(['canCampaign', 'preVoteOn']), target: 'preCampaigning' },
          { guard: 'canCampaign', target: 'campaigning' },
          { target: 'follower', reenter: true },
        ],
      },
      on: {
        heartbeat: { guard: 'validHeartbeat', target: 'follower', reenter: true, actions: 'recordHeartbeat' },
        'leader-state': [{ guard: 'nowLeading', target: 'leader', actions: 'leaderState' }, { actions: 'leaderState' }],
        promote: { guard: 'mayPromote', target: 'campaigning', actions: 'clearPromotionSuppression' },
      },
    },
    /** pre-vote: would a majority follow this replica? Only then does it campaign (and raise the round) */
    preCampaigning: {
      entry: 'preCampaign',
      always: { guard: 'preVoteMajority', target: 'campaigning' },
      after: {
        election: [{ guard: 'canCampaign', target: 'preCampaigning', reenter: true }, { target: 'follower' }],
      },
      on: {
        'pre-vote-ack': { actions: 'preVoteAck' },
        heartbeat: { guard: 'validHeartbeat', target: 'follower', actions: 'recordHeartbeat' },
        'leader-state': [{ guard: 'nowLeading', target: 'leader', actions: 'leaderState' }, { actions: 'leaderState' }],
        promote: { guard: 'mayPromote', target: 'campaigning', actions: 'clearPromotionSuppression' },
      },
    },
    campaigning: {
      entry: 'campaign',
      after: {
        election: [{ guard: 'canCampaign', target: 'campaigning', reenter: true }, { target: 'follower' }],
      },
      on: {
        heartbeat: { guard: 'beatsCampaign', target: 'follower', actions: ['recordHeartbeat', 'resignForHigher'] },
        'leader-state': [
          { guard: 'nowLeading', target: 'leader', actions: 'leaderState' },
          { guard: 'nowFollower', target: 'follower', actions: 'leaderState' },
          { actions: 'leaderState' },
        ],
      },
    },
    leader: {
      entry: 'becameLeader',
      initial: 'beating',
      states: {
        // the heartbeat loop is a child state so that its re-entry does not re-run the leader's entry
        beating: { after: { heartbeat: { target: 'beating', reenter: true, actions: 'heartbeatTick' } } },
      },
      on: {
        'heartbeat-ack': { actions: 'ack' },
        heartbeat: { guard: 'higherHeartbeat', actions: 'resignForHigher' },
        // a config-manager waiting for peers' progress hears at once that this replica no longer leads
        'leader-state': [
          { guard: 'nowFollower', target: 'follower', actions: ['leaderState', 'reportLeft'] },
          { guard: 'nowPreparing', target: 'campaigning', actions: ['leaderState', 'reportLeft'] },
          { actions: 'leaderState' },
        ],
        relinquish: { actions: 'relinquish' },
        'beat-now': { actions: 'beatNow' },
      },
    },
    stopped: { type: 'final' },
  },
});
