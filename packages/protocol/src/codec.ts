import { Packr, Unpackr } from 'msgpackr';
import { ROLE_OF, type Message } from './messages.ts';
import type { Ballot, SlotValue } from './types.ts';

/**
 * The wire codec: plain MessagePack (no msgpackr records/extensions), so any MessagePack
 * implementation (msgpack-lite included) decodes what we write. See docs/decisions/0002-msgpack.md.
 */
const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

export function encodeMessage(msg: Message): Uint8Array {
  return packr.pack(msg);
}

/** Decodes and validates; throws DecodeError (never anything else) on bad input. */
export function decodeMessage(buf: Uint8Array): Message {
  let raw: unknown;
  try {
    raw = unpackr.unpack(buf);
  } catch (e) {
    throw new DecodeError(`not MessagePack: ${(e as Error).message}`);
  }
  return validateMessage(raw);
}

/** Encodes any plain value as MessagePack (used by storage records and snapshots). */
export function encodeValue(v: unknown): Uint8Array {
  return packr.pack(v);
}
export function decodeValue(buf: Uint8Array): unknown {
  try {
    return unpackr.unpack(buf);
  } catch (e) {
    throw new DecodeError(`not MessagePack: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------- validation
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isStr = (x: unknown): x is string => typeof x === 'string';
const isBytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array;

function fail(what: string): never {
  throw new DecodeError(`invalid message: ${what}`);
}

export function isBallot(x: unknown): x is Ballot {
  return isObj(x) && isInt(x.round) && isStr(x.leader);
}

export function validateSlotValue(v: unknown, where = 'value'): SlotValue {
  if (!isObj(v)) fail(`${where} is not an object`);
  switch (v.k) {
    case 'noop':
      return v as SlotValue;
    case 'batch':
      if (!isStr(v.origin) || !isInt(v.inc) || !isInt(v.firstId) || !Array.isArray(v.cmds)) fail(`${where}: bad batch`);
      for (const c of v.cmds as unknown[]) if (!isBytes(c)) fail(`${where}: command is not bytes`);
      return v as SlotValue;
    case 'config':
      if (!isStr(v.origin) || !isInt(v.inc) || !isInt(v.firstId) || !Array.isArray(v.members) || !(v.members as unknown[]).every(isStr))
        fail(`${where}: bad config`);
      return v as SlotValue;
    default:
      return fail(`${where}: unknown kind`);
  }
}

function need(m: Record<string, unknown>, field: string, ok: (x: unknown) => boolean): void {
  if (!ok(m[field])) fail(`${String(m.type)}.${field}`);
}
const optional = (ok: (x: unknown) => boolean) => (x: unknown) => x === undefined || ok(x);

export function validateMessage(raw: unknown): Message {
  if (!isObj(raw)) fail('not an object');
  const t = raw.type;
  if (!isStr(t) || !Object.prototype.hasOwnProperty.call(ROLE_OF, t)) fail(`unknown type ${String(t)}`);
  need(raw, 'ring', isStr);
  need(raw, 'from', isStr);
  need(raw, 'to', isStr);
  if (raw.headers !== undefined) {
    if (!isObj(raw.headers) || !Object.values(raw.headers).every(isStr)) fail('headers');
  }
  switch (t) {
    case 'prepare':
      need(raw, 'ballot', isBallot); need(raw, 'fromSlot', isInt); need(raw, 'cookie', optional(isBytes));
      break;
    case 'accept':
      need(raw, 'ballot', isBallot); need(raw, 'slot', isInt); need(raw, 'decidedUpTo', isInt);
      validateSlotValue(raw.value);
      break;
    case 'promise':
      need(raw, 'ballot', isBallot); need(raw, 'fromSlot', isInt); need(raw, 'truncatedBelow', isInt);
      if (!Array.isArray(raw.accepted)) fail('promise.accepted');
      for (const e of raw.accepted as unknown[]) {
        if (!isObj(e) || !isInt(e.slot) || !isBallot(e.ballot)) fail('promise.accepted entry');
        validateSlotValue(e.value);
      }
      break;
    case 'accepted':
      need(raw, 'ballot', isBallot); need(raw, 'slot', isInt);
      break;
    case 'nack':
      need(raw, 'ballot', isBallot); need(raw, 'promised', isBallot); need(raw, 'slot', optional(isInt));
      break;
    case 'learn':
      need(raw, 'ballot', isBallot); need(raw, 'slot', isInt); validateSlotValue(raw.value);
      break;
    case 'decide':
      need(raw, 'ballot', isBallot); need(raw, 'upTo', isInt);
      break;
    case 'catchup-req':
      need(raw, 'fromSlot', isInt); need(raw, 'toSlot', isInt);
      break;
    case 'catchup-rep':
      need(raw, 'truncatedBelow', isInt); need(raw, 'chosenUpTo', isInt);
      if (!Array.isArray(raw.entries)) fail('catchup-rep.entries');
      for (const e of raw.entries as unknown[]) {
        if (!isObj(e) || !isInt(e.slot)) fail('catchup-rep entry');
        validateSlotValue(e.value);
      }
      break;
    case 'heartbeat':
      need(raw, 'ballot', isBallot); need(raw, 'decidedUpTo', isInt); need(raw, 'cookie', optional(isBytes));
      break;
    case 'heartbeat-ack':
      need(raw, 'ballot', isBallot); need(raw, 'appliedUpTo', isInt); need(raw, 'payload', optional(isBytes));
      break;
    case 'campaign':
      need(raw, 'round', isInt);
      break;
    case 'resign':
      need(raw, 'reason', isStr);
      break;
    case 'leader-state':
      need(raw, 'ballot', isBallot); need(raw, 'maxRound', isInt); need(raw, 'decidedUpTo', isInt);
      if (raw.state !== 'follower' && raw.state !== 'preparing' && raw.state !== 'leading') fail('leader-state.state');
      break;
    case 'progress':
      need(raw, 'executedUpTo', isInt); need(raw, 'chosenUpTo', isInt);
      break;
    case 'submit':
      if (!Array.isArray(raw.items)) fail('submit.items');
      for (const it of raw.items as unknown[]) if (!isObj(it) || !isInt(it.id) || !isBytes(it.cmd)) fail('submit item');
      break;
    case 'executed':
      need(raw, 'slot', isInt); need(raw, 'inc', isInt); need(raw, 'firstId', isInt);
      if (!Array.isArray(raw.results)) fail('executed.results');
      break;
    case 'aborted':
      if (!Array.isArray(raw.ids) || !(raw.ids as unknown[]).every(isInt)) fail('aborted.ids');
      break;
    case 'recovered':
      need(raw, 'ballot', isBallot); need(raw, 'upTo', isInt);
      break;
    case 'learner-event':
      need(raw, 'executedUpTo', isInt); need(raw, 'chosenUpTo', isInt);
      break;
    case 'client-req':
      need(raw, 'id', isInt);
      if (!Array.isArray(raw.cmds) || !(raw.cmds as unknown[]).every(isBytes)) fail('client-req.cmds');
      break;
    case 'client-rep':
      need(raw, 'id', isInt);
      break;
  }
  return raw as unknown as Message;
}
