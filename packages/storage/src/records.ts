import {
  type Ballot,
  DecodeError,
  type StoreRecord,
  decodeValue,
  encodeValue,
  encodeWithValue,
  encodeWithValueParts,
  isBallot,
  validateSlotValue,
} from '@decree/protocol';

/** Encodes one store record as MessagePack (the payload of a WAL frame or a pmem log record). */
/**
 * A record's bytes in parts to lay down one after the other (an accept's or chosen's value bytes are
 * not copied: encodeWithValueParts); their concatenation is encodeRecord's.
 */
export function encodeRecordParts(r: StoreRecord): Uint8Array[] {
  if (r.t === 'accept' || r.t === 'chosen') {
    const { value, ...rest } = r;
    return encodeWithValueParts(rest, value);
  }
  return [encodeValue(r)];
}

export function encodeRecord(r: StoreRecord): Uint8Array {
  if (r.t === 'accept' || r.t === 'chosen') {
    // the value's bytes as received or as packed for the wire (packed once per value object)
    const { value, ...rest } = r;
    return encodeWithValue(rest, value);
  }
  return encodeValue(r);
}

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/** Decodes and validates a record; throws DecodeError on anything that is not a StoreRecord. */
export function decodeRecord(buf: Uint8Array): StoreRecord {
  const r = decodeValue(buf) as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new DecodeError('store record is not an object');
  switch (r.t) {
    case 'promise':
      if (!isBallot(r.ballot)) throw new DecodeError('promise record: bad ballot');
      return r as unknown as StoreRecord;
    case 'accept':
      if (!isInt(r.slot) || !isBallot(r.ballot)) throw new DecodeError('accept record: bad slot or ballot');
      validateSlotValue(r.value, 'accept record value');
      return r as unknown as StoreRecord;
    case 'meta':
      if (typeof r.key !== 'string' || !(r.value instanceof Uint8Array))
        throw new DecodeError('meta record: bad key or value');
      return r as unknown as StoreRecord;
    case 'truncate':
      if (!isInt(r.below)) throw new DecodeError('truncate record: bad slot');
      return r as unknown as StoreRecord;
    case 'chosen':
      if (!isInt(r.slot)) throw new DecodeError('chosen record: bad slot');
      validateSlotValue(r.value, 'chosen record value');
      return r as unknown as StoreRecord;
    default:
      throw new DecodeError(`unknown store record type ${String(r.t)}`);
  }
}

/**
 * The records that re-state a state's promise, meta and truncation
 * point (written at the start of each segment / head move).
 */
export function checkpointRecords(s: {
  promised: Ballot;
  truncatedBelow: number;
  meta: Map<string, Uint8Array>;
}): StoreRecord[] {
  const out: StoreRecord[] = [];
  if (s.promised.round > 0 || s.promised.leader !== '') out.push({ t: 'promise', ballot: s.promised });
  if (s.truncatedBelow > 0) out.push({ t: 'truncate', below: s.truncatedBelow });
  for (const [key, value] of s.meta) out.push({ t: 'meta', key, value });
  return out;
}
