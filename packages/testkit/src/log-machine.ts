import type { Slot, StateMachine } from '@decree/protocol';

/** A state machine that records every command it applies (for agreement checks in tests). */
export class LogMachine implements StateMachine {
  readonly applied: { slot: Slot; cmd: string }[] = [];
  hooks: Partial<StateMachine> = {};
  apply(command: Uint8Array, slot: Slot): Uint8Array | undefined {
    const s = Buffer.from(command).toString('latin1');
    this.applied.push({ slot, cmd: s });
    return Buffer.from(`ok:${s}`, 'latin1');
  }
  async snapshot(): Promise<Uint8Array> {
    return Buffer.from(JSON.stringify(this.applied));
  }
  async restore(snapshot: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Uint8Array[] = [];
    for await (const p of snapshot) parts.push(p);
    this.applied.length = 0;
    this.applied.push(...JSON.parse(Buffer.concat(parts).toString()));
  }
  commands(): string[] {
    return this.applied.map((a) => a.cmd);
  }
}

export const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');
export const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : Buffer.from(b).toString('latin1');
