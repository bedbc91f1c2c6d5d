// fast-check arbitraries and fixed samples for every protocol message type (shared by the tests).
import fc from 'fast-check';
import type { Ballot, Message, MessageType, SlotValue } from '../src/index.ts';

// Deterministic by default (CI-safe); FC_SEED=<n> replays a seed, FC_SEED=random explores.
const seedEnv = process.env.FC_SEED;
if (seedEnv !== 'random')
  fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: seedEnv ? Number(seedEnv) : 20261123 });

export const id = fc.string({ minLength: 0, maxLength: 8 });
export const nat = fc.nat({ max: 2 ** 31 });
export const bigNat = fc.maxSafeNat();
export const bytes = fc.uint8Array({ maxLength: 70 });
export const ballot: fc.Arbitrary<Ballot> = fc.record({
  round: fc.nat({ max: 20 }),
  leader: fc.constantFrom('', 'a', 'b', 'c', 'r1', 'r10', 'r2'),
});
export const anyBallot: fc.Arbitrary<Ballot> = fc.record({ round: bigNat, leader: id });

export const slotValue: fc.Arbitrary<SlotValue> = fc.oneof(
  fc.constant({ k: 'noop' } as const),
  fc.record(
    {
      k: fc.constant('batch' as const),
      origin: id,
      inc: nat,
      firstId: nat,
      cmds: fc.array(bytes, { maxLength: 6 }),
      excl: fc.boolean(),
      last: fc.boolean(),
    },
    { requiredKeys: ['k', 'origin', 'inc', 'firstId', 'cmds'] },
  ),
  fc.record(
    {
      k: fc.constant('config' as const),
      epoch: nat,
      origin: id,
      inc: nat,
      firstId: nat,
      members: fc.array(id, { maxLength: 5 }),
      cookie: bytes,
    },
    { requiredKeys: ['k', 'epoch', 'origin', 'inc', 'firstId', 'members'] },
  ),
);

const header = { ring: id, from: id, to: id };
const configuration = fc.record({ epoch: bigNat, members: fc.array(id, { maxLength: 5 }), startSlot: bigNat });
const rec = <T>(fields: { [K in keyof T]: fc.Arbitrary<T[K]> }, optional: string[] = []) =>
  fc.record(fields as never, {
    requiredKeys: Object.keys(fields).filter((k) => !optional.includes(k)) as never,
  }) as fc.Arbitrary<T>;

/** One arbitrary per message type, optional fields sometimes present. */
export const messageArbs: { [T in MessageType]: fc.Arbitrary<Extract<Message, { type: T }>> } = {
  prepare: rec(
    { type: fc.constant('prepare'), ...header, ballot: anyBallot, fromSlot: bigNat, cookie: bytes, pageFrom: bigNat },
    ['cookie', 'pageFrom'],
  ),
  accept: rec({
    type: fc.constant('accept'),
    ...header,
    ballot: anyBallot,
    slot: bigNat,
    value: slotValue,
    decidedUpTo: bigNat,
  }),
  promise: rec(
    {
      type: fc.constant('promise'),
      ...header,
      ballot: anyBallot,
      fromSlot: bigNat,
      truncatedBelow: bigNat,
      accepted: fc.array(fc.record({ slot: bigNat, ballot: anyBallot, value: slotValue }), { maxLength: 4 }),
      executedUpTo: bigNat,
      pageFrom: bigNat,
      more: bigNat,
    },
    ['executedUpTo', 'pageFrom', 'more'],
  ),
  accepted: rec({ type: fc.constant('accepted'), ...header, ballot: anyBallot, slot: bigNat }),
  nack: rec(
    { type: fc.constant('nack'), ...header, ballot: anyBallot, promised: anyBallot, slot: bigNat, reason: fc.string() },
    ['slot', 'reason'],
  ),
  learn: rec({
    type: fc.constant('learn'),
    ...header,
    ballot: anyBallot,
    slot: bigNat,
    value: slotValue,
    decidedUpTo: bigNat,
  }),
  decide: rec({ type: fc.constant('decide'), ...header, ballot: anyBallot, upTo: bigNat }),
  'catchup-req': rec({ type: fc.constant('catchup-req'), ...header, fromSlot: bigNat, toSlot: bigNat }),
  'catchup-rep': rec({
    type: fc.constant('catchup-rep'),
    ...header,
    truncatedBelow: bigNat,
    chosenUpTo: bigNat,
    entries: fc.array(fc.record({ slot: bigNat, value: slotValue }), { maxLength: 4 }),
  }),
  heartbeat: rec({ type: fc.constant('heartbeat'), ...header, ballot: anyBallot, decidedUpTo: bigNat, cookie: bytes }, [
    'cookie',
  ]),
  'heartbeat-ack': rec(
    { type: fc.constant('heartbeat-ack'), ...header, ballot: anyBallot, appliedUpTo: bigNat, payload: bytes },
    ['payload'],
  ),
  campaign: rec({ type: fc.constant('campaign'), ...header, round: bigNat, cookie: bytes }, ['cookie']),
  resign: rec({ type: fc.constant('resign'), ...header, reason: fc.string() }),
  'leader-state': rec(
    {
      type: fc.constant('leader-state'),
      ...header,
      state: fc.constantFrom('follower', 'preparing', 'leading'),
      ballot: anyBallot,
      maxRound: bigNat,
      decidedUpTo: bigNat,
      executedUpTo: bigNat,
      leaderHint: id,
      relinquished: fc.boolean(),
      config: configuration,
      observers: fc.array(id, { maxLength: 3 }),
    },
    ['leaderHint', 'relinquished', 'config', 'observers'],
  ),
  progress: rec(
    { type: fc.constant('progress'), ...header, executedUpTo: bigNat, chosenUpTo: bigNat, config: configuration },
    ['config'],
  ),
  submit: rec({
    type: fc.constant('submit'),
    ...header,
    items: fc.array(
      fc.record({ id: bigNat, cmd: bytes, excl: fc.boolean(), last: fc.boolean() }, { requiredKeys: ['id', 'cmd'] }),
      { maxLength: 4 },
    ),
  }),
  executed: rec({
    type: fc.constant('executed'),
    ...header,
    slot: bigNat,
    inc: bigNat,
    firstId: bigNat,
    results: fc.array(fc.option(bytes, { nil: undefined }), { maxLength: 4 }),
  }),
  aborted: rec(
    {
      type: fc.constant('aborted'),
      ...header,
      ids: fc.array(bigNat, { maxLength: 4 }),
      maybeChosen: fc.boolean(),
      leaderHint: id,
      busy: fc.boolean(),
    },
    ['leaderHint', 'busy'],
  ),
  recovered: rec({ type: fc.constant('recovered'), ...header, ballot: anyBallot, upTo: bigNat }),
  'learner-event': rec({ type: fc.constant('learner-event'), ...header, executedUpTo: bigNat, chosenUpTo: bigNat }),
  'client-req': rec(
    { type: fc.constant('client-req'), ...header, id: bigNat, cmds: fc.array(bytes, { maxLength: 4 }), inc: nat },
    ['inc'],
  ),
  'client-rep': rec(
    {
      type: fc.constant('client-rep'),
      ...header,
      id: bigNat,
      results: fc.array(fc.option(bytes, { nil: null }), { maxLength: 4 }),
      error: fc.string(),
      leaderHint: id,
      maybeExecuted: fc.boolean(),
      inc: nat,
      slot: bigNat,
      failed: fc.array(fc.record({ i: nat, error: fc.string(), maybeExecuted: fc.boolean() }), { maxLength: 3 }),
    },
    ['results', 'error', 'leaderHint', 'maybeExecuted', 'inc', 'slot', 'failed'],
  ),
  'read-confirm': rec({ type: fc.constant('read-confirm'), ...header, ballot, seq: bigNat }),
  'read-ack': rec({ type: fc.constant('read-ack'), ...header, ballot, seq: bigNat, ok: fc.boolean() }),
  'snap-req': rec({
    type: fc.constant('snap-req'),
    ...header,
    xfer: bigNat,
    slot: bigNat,
    crc: fc.nat({ max: 0xffffffff }),
    next: bigNat,
    window: nat,
  }),
  'snap-chunk': rec(
    {
      type: fc.constant('snap-chunk'),
      ...header,
      xfer: bigNat,
      slot: bigNat,
      members: fc.array(id, { maxLength: 5 }),
      length: bigNat,
      crc: fc.nat({ max: 0xffffffff }),
      index: bigNat,
      count: bigNat,
      chunkCrc: fc.nat({ max: 0xffffffff }),
      data: bytes,
      epoch: bigNat,
    },
    ['epoch'],
  ),
  'pre-vote': rec({ type: fc.constant('pre-vote'), ...header, round: bigNat }),
  'pre-vote-ack': rec({ type: fc.constant('pre-vote-ack'), ...header, round: bigNat, granted: fc.boolean() }),
  bootstrap: rec({ type: fc.constant('bootstrap'), ...header, members: fc.array(id, { maxLength: 5 }) }),
  'bootstrap-ack': rec({ type: fc.constant('bootstrap-ack'), ...header, ok: fc.boolean(), error: fc.string() }, [
    'error',
  ]),
  'snap-executed': rec({
    type: fc.constant('snap-executed'),
    ...header,
    slot: bigNat,
    bytes: bigNat,
    requested: fc.boolean(),
  }),
  'snap-need': rec({ type: fc.constant('snap-need'), ...header, peer: id, below: bigNat }),
  'snap-take': rec({ type: fc.constant('snap-take'), ...header, seq: bigNat, forced: fc.boolean() }, ['forced']),
  'snap-data': rec(
    {
      type: fc.constant('snap-data'),
      ...header,
      seq: bigNat,
      slot: bigNat,
      data: bytes,
      config: configuration,
      error: fc.string(),
      requested: fc.boolean(),
      refused: fc.boolean(),
    },
    ['config', 'error', 'requested', 'refused'],
  ),
  'snap-saved': rec({
    type: fc.constant('snap-saved'),
    ...header,
    slot: bigNat,
    name: fc.string(),
    copied: fc.boolean(),
  }),
  'snap-install': rec(
    { type: fc.constant('snap-install'), ...header, seq: bigNat, slot: bigNat, data: bytes, config: configuration },
    ['config'],
  ),
  'snap-installed': rec(
    { type: fc.constant('snap-installed'), ...header, seq: bigNat, ok: fc.boolean(), error: fc.string() },
    ['error'],
  ),
  'log-truncate': rec({ type: fc.constant('log-truncate'), ...header, below: bigNat }),
  'retain-truncate': rec({ type: fc.constant('retain-truncate'), ...header, below: bigNat }),
  'exec-mark': rec(
    {
      type: fc.constant('exec-mark'),
      ...header,
      upTo: bigNat,
      fills: fc.array(fc.record({ slot: bigNat, value: slotValue }), { maxLength: 3 }),
      flush: fc.boolean(),
      decided: fc.record({ ballot: anyBallot, upTo: bigNat }),
    },
    ['flush', 'decided'],
  ),
  'log-full': rec({ type: fc.constant('log-full'), ...header, usedBytes: bigNat, capacityBytes: bigNat }),
  'config-change': rec(
    {
      type: fc.constant('config-change'),
      ...header,
      id: bigNat,
      members: fc.array(id, { maxLength: 5 }),
      cookie: bytes,
      inc: nat,
    },
    ['cookie', 'inc'],
  ),
  'config-proposal': rec(
    {
      type: fc.constant('config-proposal'),
      ...header,
      id: bigNat,
      members: fc.array(id, { maxLength: 5 }),
      cookie: bytes,
    },
    ['cookie'],
  ),
  'config-result': rec(
    {
      type: fc.constant('config-result'),
      ...header,
      id: bigNat,
      ok: fc.boolean(),
      epoch: bigNat,
      members: fc.array(id, { maxLength: 5 }),
      slot: bigNat,
      error: fc.string(),
      code: fc.string(),
      leaderHint: id,
      maybeChosen: fc.boolean(),
      inc: nat,
    },
    ['epoch', 'members', 'slot', 'error', 'code', 'leaderHint', 'maybeChosen', 'inc'],
  ),
  'config-notice': rec(
    {
      type: fc.constant('config-notice'),
      ...header,
      kind: fc.constantFrom('changed', 'aborted'),
      epoch: bigNat,
      members: fc.array(id, { maxLength: 5 }),
      cookie: bytes,
      reason: fc.string(),
    },
    ['cookie', 'reason'],
  ),
  'config-refused': rec(
    {
      type: fc.constant('config-refused'),
      ...header,
      id: bigNat,
      maybeChosen: fc.boolean(),
      reason: fc.string(),
      leaderHint: id,
    },
    ['leaderHint'],
  ),
  'set-observers': rec({ type: fc.constant('set-observers'), ...header, observers: fc.array(id, { maxLength: 4 }) }),
  reconfigured: rec(
    {
      type: fc.constant('reconfigured'),
      ...header,
      slot: bigNat,
      config: configuration,
      origin: id,
      inc: bigNat,
      firstId: bigNat,
      cookie: bytes,
    },
    ['origin', 'inc', 'firstId', 'cookie'],
  ),
  'watch-peers': rec({
    type: fc.constant('watch-peers'),
    ...header,
    observers: fc.array(id, { maxLength: 4 }),
    watch: fc.boolean(),
  }),
  'peer-progress': rec(
    {
      type: fc.constant('peer-progress'),
      ...header,
      leading: fc.boolean(),
      leader: id,
      decidedUpTo: bigNat,
      windowMs: bigNat,
      peers: fc.array(fc.record({ id, appliedUpTo: bigNat, ageMs: fc.nat() }), { maxLength: 4 }),
    },
    ['leader'],
  ),
};

export const anyMessage: fc.Arbitrary<Message> = fc.oneof(...(Object.values(messageArbs) as fc.Arbitrary<Message>[]));

// ---------------------------------------------------------------- fixed samples
const b: Ballot = { round: 3, leader: 'r1' };
const h = { ring: 'ring0', from: 'r1', to: 'r2' };
const u8 = (...xs: number[]) => new Uint8Array(xs);
const cfg = { epoch: 2, members: ['r1', 'r2', 'r4'], startSlot: 13 };
const batch: SlotValue = {
  k: 'batch',
  origin: 'r1',
  inc: 2,
  firstId: 7,
  cmds: [u8(1, 2, 3), u8(), u8(255)],
  excl: true,
};

/** One hand-written sample of every message type, every optional field present. */
export const samples: { [T in MessageType]: Extract<Message, { type: T }> } = {
  prepare: {
    type: 'prepare',
    ...h,
    ballot: b,
    fromSlot: 10,
    cookie: u8(9, 9),
    pageFrom: 12,
    headers: { traceparent: '00-abc-def-01' },
  },
  accept: { type: 'accept', ...h, ballot: b, slot: 11, value: batch, decidedUpTo: 10 },
  promise: {
    type: 'promise',
    ...h,
    ballot: b,
    fromSlot: 10,
    truncatedBelow: 5,
    executedUpTo: 9,
    pageFrom: 10,
    more: 13,
    accepted: [
      { slot: 10, ballot: { round: 2, leader: 'r3' }, value: batch },
      { slot: 11, ballot: b, value: { k: 'noop' } },
      {
        slot: 12,
        ballot: b,
        value: { k: 'config', epoch: 2, members: ['r1', 'r2', 'r4'], origin: 'r1', inc: 1, firstId: 0, cookie: u8(4) },
      },
    ],
  },
  accepted: { type: 'accepted', ...h, ballot: b, slot: 11 },
  nack: { type: 'nack', ...h, ballot: b, promised: { round: 4, leader: 'r2' }, slot: 11, reason: 'lower ballot' },
  learn: { type: 'learn', ...h, ballot: b, slot: 11, value: batch, decidedUpTo: 10 },
  decide: { type: 'decide', ...h, ballot: b, upTo: 11 },
  'catchup-req': { type: 'catchup-req', ...h, fromSlot: 3, toSlot: 9 },
  'catchup-rep': {
    type: 'catchup-rep',
    ...h,
    entries: [
      { slot: 3, value: batch },
      { slot: 4, value: { k: 'noop' } },
    ],
    truncatedBelow: 2,
    chosenUpTo: 9,
  },
  heartbeat: { type: 'heartbeat', ...h, ballot: b, decidedUpTo: 11, cookie: u8(1) },
  'heartbeat-ack': { type: 'heartbeat-ack', ...h, ballot: b, appliedUpTo: 11, payload: u8(0, 1, 2) },
  campaign: { type: 'campaign', ...h, round: 4, cookie: u8(7) },
  resign: { type: 'resign', ...h, reason: 'vetoed' },
  'leader-state': {
    type: 'leader-state',
    ...h,
    state: 'leading',
    ballot: b,
    maxRound: 3,
    decidedUpTo: 11,
    executedUpTo: 9,
    leaderHint: 'r1',
    relinquished: false,
    config: cfg,
    observers: ['r4'],
  },
  progress: { type: 'progress', ...h, executedUpTo: 9, chosenUpTo: 11, config: cfg },
  submit: {
    type: 'submit',
    ...h,
    items: [
      { id: 1, cmd: u8(1) },
      { id: 2, cmd: u8(2, 2), excl: true, last: false },
    ],
  },
  executed: { type: 'executed', ...h, slot: 11, inc: 2, firstId: 7, results: [u8(1), undefined, u8()] },
  aborted: { type: 'aborted', ...h, ids: [7, 8], maybeChosen: true, leaderHint: 'r2', busy: false },
  recovered: { type: 'recovered', ...h, ballot: b, upTo: 11 },
  'learner-event': { type: 'learner-event', ...h, executedUpTo: 9, chosenUpTo: 11 },
  'client-req': { type: 'client-req', ...h, id: 42, cmds: [u8(1, 2), u8(3)], inc: 7 },
  'client-rep': {
    type: 'client-rep',
    ...h,
    id: 42,
    inc: 7,
    results: [u8(5), null],
    error: 'none',
    leaderHint: 'r1',
    maybeExecuted: true,
    failed: [{ i: 1, error: 'NOT_LEADER', maybeExecuted: true }],
    slot: 19,
  },
  'read-confirm': { type: 'read-confirm', ...h, ballot: { round: 3, leader: 'r1' }, seq: 7 },
  'read-ack': { type: 'read-ack', ...h, ballot: { round: 3, leader: 'r1' }, seq: 7, ok: true },
  'snap-req': { type: 'snap-req', ...h, xfer: 3, slot: 100, crc: 0xdeadbeef, next: 4, window: 8 },
  'snap-chunk': {
    type: 'snap-chunk',
    ...h,
    xfer: 3,
    slot: 100,
    members: ['r1', 'r2', 'r3'],
    length: 10,
    crc: 0xdeadbeef,
    index: 0,
    count: 1,
    chunkCrc: 7,
    data: u8(1, 2, 3),
    epoch: 2,
  },
  'pre-vote': { type: 'pre-vote', ...h, round: 5 },
  'pre-vote-ack': { type: 'pre-vote-ack', ...h, round: 5, granted: true },
  bootstrap: { type: 'bootstrap', ...h, members: ['r1', 'r2', 'r3'] },
  'bootstrap-ack': { type: 'bootstrap-ack', ...h, ok: false, error: 'bootstrapped with another set' },
  'snap-executed': { type: 'snap-executed', ...h, slot: 40, bytes: 4096, requested: false },
  'snap-need': { type: 'snap-need', ...h, peer: 'r2', below: 30 },
  'snap-take': { type: 'snap-take', ...h, seq: 3, forced: true },
  'snap-data': {
    type: 'snap-data',
    ...h,
    seq: 3,
    slot: 40,
    data: u8(1, 2),
    config: cfg,
    error: 'none',
    requested: false,
    refused: false,
  },
  'snap-saved': { type: 'snap-saved', ...h, slot: 40, name: 'snap-40', copied: true },
  'snap-install': { type: 'snap-install', ...h, seq: 4, slot: 40, data: u8(1, 2), config: cfg },
  'snap-installed': { type: 'snap-installed', ...h, seq: 4, ok: false, error: 'restore failed' },
  'log-truncate': { type: 'log-truncate', ...h, below: 35 },
  'retain-truncate': { type: 'retain-truncate', ...h, below: 35 },
  'exec-mark': {
    type: 'exec-mark',
    ...h,
    upTo: 12,
    fills: [{ slot: 11, value: batch }],
    flush: true,
    decided: { ballot: b, upTo: 14 },
  },
  'log-full': { type: 'log-full', ...h, usedBytes: 60 << 20, capacityBytes: 64 << 20 },
  'config-change': { type: 'config-change', ...h, id: 5, members: ['r1', 'r2', 'r4'], cookie: u8(4), inc: 3 },
  'config-proposal': { type: 'config-proposal', ...h, id: 5, members: ['r1', 'r2', 'r4'], cookie: u8(4) },
  'config-result': {
    type: 'config-result',
    ...h,
    id: 5,
    ok: false,
    epoch: 2,
    members: ['r1'],
    slot: 12,
    error: 'pending',
    code: 'PENDING',
    leaderHint: 'r2',
    maybeChosen: true,
    inc: 3,
  },
  'config-notice': {
    type: 'config-notice',
    ...h,
    kind: 'aborted',
    epoch: 2,
    members: ['r1', 'r2'],
    cookie: u8(1),
    reason: 'timeout',
  },
  'config-refused': { type: 'config-refused', ...h, id: 5, maybeChosen: false, reason: 'not leader', leaderHint: 'r2' },
  'set-observers': { type: 'set-observers', ...h, observers: ['r4'] },
  reconfigured: { type: 'reconfigured', ...h, slot: 12, config: cfg, origin: 'r1', inc: 1, firstId: 5, cookie: u8(4) },
  'watch-peers': { type: 'watch-peers', ...h, observers: ['r4'], watch: true },
  'peer-progress': {
    type: 'peer-progress',
    ...h,
    leading: true,
    leader: 'r1',
    decidedUpTo: 12,
    windowMs: 1000,
    peers: [{ id: 'r4', appliedUpTo: 10, ageMs: 5 }],
  },
};

/** Deep-copies a structure turning every Uint8Array into a Buffer (what a msgpack-lite peer holds). */
export function withBuffers(x: unknown): unknown {
  if (x instanceof Uint8Array) return Buffer.from(x);
  if (Array.isArray(x)) return x.map(withBuffers);
  if (typeof x === 'object' && x !== null) {
    const o: Record<string, unknown> = {};
    // defineProperty: an own "__proto__" key stays a key instead of setting the prototype
    for (const [k, v] of Object.entries(x))
      Object.defineProperty(o, k, { value: withBuffers(v), enumerable: true, writable: true, configurable: true });
    return o;
  }
  return x;
}

/**
 * Normal form for comparing structures across codecs: every byte array becomes a plain number[]
 * tagged as bytes, undefined object properties disappear, undefined array items become null.
 */
export function normal(x: unknown): unknown {
  if (x instanceof Uint8Array) return { bytes: Array.from(x) };
  if (Array.isArray(x)) return x.map((e) => (e === undefined ? null : normal(e)));
  if (typeof x === 'object' && x !== null) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (v !== undefined) o[k] = normal(v);
    return o;
  }
  return x;
}
