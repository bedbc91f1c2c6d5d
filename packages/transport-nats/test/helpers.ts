import type { Message } from '@decree/protocol';
import type { NatsTransport, NatsTransportLogger } from '../src/index.ts';

/** Polls `cond` every 10 ms until it holds; fails with `what` after `timeoutMs` (generous: a loaded CI box). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Attaches a receiver that records every message. */
export function collect(t: NatsTransport): Message[] {
  const got: Message[] = [];
  t.setReceiver((m) => got.push(m));
  return got;
}

/** A logger that keeps what it is told (tests stay quiet and can assert on warnings). */
export function memoryLogger(): NatsTransportLogger & { lines: { msg: string; obj: Record<string, unknown> }[] } {
  const lines: { msg: string; obj: Record<string, unknown> }[] = [];
  return {
    lines,
    warn: (obj, msg) => lines.push({ msg, obj }),
    info: () => {},
  };
}
