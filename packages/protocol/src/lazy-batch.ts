import type { SlotValue } from './types.ts';

/**
 * The commands of a batch decoded from the wire, left where they arrived (issue #19 point 1): the
 * MessagePack array of bins at [start, end) of `buf`. A follower stores the value, writes its bytes to the
 * WAL and applies its commands from these bytes without a JavaScript object per command. Reading
 * `value.cmds` still works: it makes the views once, on first use (a rare path: promises, replays, tests).
 */
export interface WireCommands {
  readonly buf: Uint8Array;
  /** the array's header */
  readonly start: number;
  readonly end: number;
  readonly count: number;
  /** the sum of the commands' lengths */
  readonly payloadBytes: number;
}

const WIRE = Symbol('decree.wireCommands');
type Batch = Extract<SlotValue, { k: 'batch' }>;

/** The commands of a batch value still in their wire bytes, or undefined (a value built in memory). */
export function wireCommands(v: SlotValue): WireCommands | undefined {
  return (v as { [WIRE]?: WireCommands })[WIRE];
}

/** Reads the bin header at p: sets BIN_OFF / BIN_LEN; the position after the bin. */
export let BIN_OFF = 0;
export let BIN_LEN = 0;
export function readBin(b: Uint8Array, p: number): number {
  const t = b[p]!;
  if (t === 0xc4) {
    BIN_LEN = b[p + 1]!;
    BIN_OFF = p + 2;
  } else if (t === 0xc5) {
    BIN_LEN = (b[p + 1]! << 8) | b[p + 2]!;
    BIN_OFF = p + 3;
  } else {
    BIN_LEN = ((b[p + 1]! << 24) | (b[p + 2]! << 16) | (b[p + 3]! << 8) | b[p + 4]!) >>> 0;
    BIN_OFF = p + 5;
  }
  return BIN_OFF + BIN_LEN;
}

/** The position of the first command's bin in a WireCommands (after the array header). */
export function firstCommandAt(w: WireCommands): number {
  const t = w.buf[w.start]!;
  return w.start + ((t & 0xf0) === 0x90 ? 1 : t === 0xdc ? 3 : 5);
}

function materialize(w: WireCommands): Uint8Array[] {
  const out: Uint8Array[] = new Array(w.count);
  let p = firstCommandAt(w);
  for (let i = 0; i < w.count; i++) {
    p = readBin(w.buf, p);
    out[i] = w.buf.subarray(BIN_OFF, BIN_OFF + BIN_LEN);
  }
  return out;
}

/**
 * A batch value whose `cmds` stay in their wire bytes until read. `fields` are the value's other fields
 * (validated by the caller); the commands were checked to be `count` bins.
 */
export function lazyBatch(fields: Record<string, unknown>, w: WireCommands): Batch {
  const v = fields as Record<string | symbol, unknown>;
  v[WIRE] = w;
  Object.defineProperty(v, 'cmds', {
    enumerable: true,
    configurable: true,
    get(this: Record<string, unknown>) {
      const cmds = materialize(w);
      Object.defineProperty(this, 'cmds', { value: cmds, enumerable: true, configurable: true, writable: false });
      return cmds;
    },
  });
  return v as unknown as Batch;
}

/** The number of commands of a batch value (without making views of wire commands). */
export function commandCount(v: Batch): number {
  const w = wireCommands(v);
  return w ? w.count : v.cmds.length;
}
