import { type AcceptedEntry, type ChosenEntry, type Message, type SlotValue, slotValueSize } from '@decree/protocol';

/** Bytes of MessagePack framing around a value in an entry (slot, ballot, map keys). */
const ENTRY = 40;
/** Bytes of a message's header and fixed fields (type, ring, from, to, ballot, numbers). */
const BASE = 64;

const bytes = (b: Uint8Array | undefined | null): number => (b ? b.length + 5 : 0);
const valueSize = (v: SlotValue): number => slotValueSize(v) + 16;
function entries(es: readonly (AcceptedEntry | ChosenEntry)[]): number {
  let n = 0;
  for (const e of es) n += valueSize(e.value) + ENTRY;
  return n;
}

/**
 * The size a message would have on the wire, estimated from its fields without encoding it
 * (values are counted by `slotValueSize`, bytes by their length, the rest by constants). Within
 * about 10% + 64 bytes of `encodeMessage(m).length` for the messages that carry data.
 */
export function estimateMessageSize(m: Message): number {
  switch (m.type) {
    case 'accept':
    case 'learn':
      return BASE + valueSize(m.value);
    case 'promise':
      return BASE + 32 + entries(m.accepted);
    case 'catchup-rep':
      return BASE + 16 + entries(m.entries);
    case 'exec-mark':
      return BASE + entries(m.fills);
    case 'snap-chunk':
      return BASE + 80 + m.members.length * 4 + bytes(m.data);
    case 'snap-data':
    case 'snap-install':
      return BASE + 32 + bytes(m.data);
    case 'client-req': {
      let n = BASE;
      for (const c of m.cmds) n += bytes(c);
      return n;
    }
    case 'client-rep': {
      let n = BASE + 16;
      for (const r of m.results ?? []) n += r ? bytes(r) : 1;
      return n;
    }
    case 'submit': {
      let n = BASE;
      for (const it of m.items) n += bytes(it.cmd) + 16;
      return n;
    }
    case 'executed': {
      let n = BASE + 16;
      for (const r of m.results) n += r ? bytes(r) : 1;
      return n;
    }
    case 'heartbeat':
    case 'prepare':
      return BASE + 16 + bytes(m.cookie);
    case 'heartbeat-ack':
      return BASE + 16 + bytes(m.payload);
    default:
      return BASE + 32;
  }
}
