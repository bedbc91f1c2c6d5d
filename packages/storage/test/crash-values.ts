import type { SlotValue } from '@decree/protocol';

/** The value the crash child writes for `id` (deterministic, varied size), so the parent can check it is intact. */
export function crashValue(id: number): SlotValue {
  const n = 16 + (((id * 2654435761) >>> 0) % 600);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (id + i * 13) & 0xff;
  return { k: 'batch', origin: 'crash', inc: 1, firstId: id, cmds: [b] };
}
