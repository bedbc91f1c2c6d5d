import { decodeValue, encodeValue, type Slot, type StateMachine } from '@decree/protocol';
import { KvMachine, type KvMachineOptions } from '@decree/kv-machine';

export interface RecordingKvOptions extends KvMachineOptions {
  /**
   * Commands longer than this are recorded by a fingerprint (`#<length>:<sampled bytes>`) instead of
   * their base64 (large values in the scale scenario: a record per command would cost more than the
   * run). Default: every command in base64.
   */
  fingerprintOver?: number;
}

/** A short, cheap, deterministic name for a large command: its length and 16 bytes sampled across it. */
export function fingerprint(cmd: Uint8Array): string {
  let s = `#${cmd.length}:`;
  const step = Math.max(1, Math.floor(cmd.length / 16));
  for (let i = 0; i < cmd.length; i += step) s += cmd[i]!.toString(16).padStart(2, '0');
  return s;
}

/**
 * The KV state machine, recording each applied command (for agreement checks). Its snapshot carries
 * the record too, so a replica that catches up by snapshot still shows the whole applied sequence.
 */
export class RecordingKv implements StateMachine {
  kv: KvMachine;
  applied: { slot: Slot; cmd: string }[] = [];
  /** both copies below are taken at the call (KvMachine captures its maps synchronously) */
  readonly snapshotIsCopy = true;
  constructor(private readonly opts: RecordingKvOptions = {}) {
    this.kv = new KvMachine({ ...opts, snapshotYield: false }); // read in one go: the simulation is deterministic
  }
  /** How a command is named in `applied`. */
  tag(command: Uint8Array): string {
    const over = this.opts.fingerprintOver;
    return over !== undefined && command.length > over ? fingerprint(command) : Buffer.from(command).toString('base64');
  }
  beforeBatch(slot: Slot, atMs?: number): void {
    this.kv.beforeBatch(slot, atMs);
  }
  apply(command: Uint8Array, slot: Slot): Uint8Array | undefined {
    this.applied.push({ slot, cmd: this.tag(command) });
    return this.kv.apply(command, slot);
  }
  /** a follower's command read where it arrived (the seeds that serialize messages take this path) */
  applyAt(buf: Uint8Array, start: number, end: number, slot: Slot): Uint8Array | undefined {
    this.applied.push({ slot, cmd: this.tag(buf.subarray(start, end)) });
    return this.kv.applyAt(buf, start, end, slot);
  }
  async snapshot(): Promise<Uint8Array> {
    const applied = this.applied.slice();
    const kv = this.kv.snapshot(); // captured now, encoded lazily
    const parts: Uint8Array[] = [];
    for await (const p of await kv) parts.push(p);
    return encodeValue({ applied, kv: Buffer.concat(parts) });
  }
  async restore(s: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Uint8Array[] = [];
    for await (const p of s) parts.push(p);
    const v = decodeValue(Buffer.concat(parts)) as { applied: { slot: Slot; cmd: string }[]; kv: Uint8Array };
    const kv = new KvMachine({ ...this.opts, snapshotYield: false });
    await kv.restore(v.kv);
    this.kv = kv;
    this.applied = v.applied;
  }
}
