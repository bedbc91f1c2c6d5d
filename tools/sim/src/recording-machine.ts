import type { Slot, StateMachine } from '@decree/protocol';
import { KvMachine } from '@decree/kv-machine';

/** The KV state machine, recording each applied command (for agreement checks). */
export class RecordingKv implements StateMachine {
  readonly kv = new KvMachine();
  readonly applied: { slot: Slot; cmd: string }[] = [];
  apply(command: Uint8Array, slot: Slot): Uint8Array | undefined {
    this.applied.push({ slot, cmd: Buffer.from(command).toString('base64') });
    return this.kv.apply(command, slot);
  }
  snapshot(): Promise<Uint8Array | AsyncIterable<Uint8Array>> {
    return this.kv.snapshot();
  }
  restore(s: AsyncIterable<Uint8Array>): Promise<void> {
    return this.kv.restore(s);
  }
}
