import { decodeValue, encodeValue, type Slot, type StateMachine } from '@decree/protocol';
import { KvMachine } from '@decree/kv-machine';

/**
 * The KV state machine, recording each applied command (for agreement checks). Its snapshot carries
 * the record too, so a replica that catches up by snapshot still shows the whole applied sequence.
 */
export class RecordingKv implements StateMachine {
  kv = new KvMachine();
  applied: { slot: Slot; cmd: string }[] = [];
  /** both copies below are taken at the call (KvMachine captures its maps synchronously) */
  readonly snapshotIsCopy = true;
  apply(command: Uint8Array, slot: Slot): Uint8Array | undefined {
    this.applied.push({ slot, cmd: Buffer.from(command).toString('base64') });
    return this.kv.apply(command, slot);
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
    const kv = new KvMachine();
    await kv.restore(v.kv);
    this.kv = kv;
    this.applied = v.applied;
  }
}
