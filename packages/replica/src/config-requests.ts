import type { Bus, Env } from '@decree/bus';
import type { MessageOf, ReplicaId, RingId } from '@decree/protocol';
import { ConfigChangeError } from './errors.ts';
import type { ConfigChangeResult, ConfigurationInfo } from './types.ts';

interface Open {
  resolve(r: ConfigChangeResult): void;
  reject(e: Error): void;
  timer: unknown;
}

/**
 * This replica's configuration-change requests (RSL ChangeConfiguration): each goes to the leader's
 * config-manager and waits for its config-result. Ids are scoped to the replica's incarnation: an
 * answer to a request of an earlier run is dropped.
 */
export class ConfigRequests {
  private nextId = 1;
  private readonly open = new Map<number, Open>();

  constructor(private readonly o: { ring: RingId; self: ReplicaId; inc: number; bus: Bus; env: Env }) {}

  /** Sends the change to `to` (the leader, or this replica when none is known: it answers NOT_LEADER). */
  request(
    to: ReplicaId,
    members: readonly ReplicaId[],
    cookie: Uint8Array | undefined,
    timeoutMs: number,
  ): Promise<ConfigChangeResult> {
    const { ring, self, inc, bus, env } = this.o;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = env.clock.setTimeout(() => {
        if (this.open.delete(id))
          reject(new ConfigChangeError('ABORTED', `no answer within ${timeoutMs} ms`, true, undefined));
      }, timeoutMs);
      this.open.set(id, { resolve, reject, timer });
      bus.send({
        type: 'config-change',
        ring,
        from: self,
        to,
        id,
        inc,
        members: [...members],
        ...(cookie ? { cookie } : {}),
      });
    });
  }

  /** A config-result: settles its request (`current` fills what the answer left out). */
  onResult(m: MessageOf<'config-result'>, current: ConfigurationInfo): void {
    if (m.inc !== undefined && m.inc !== this.o.inc) return; // the answer to a request of an earlier run
    const r = this.open.get(m.id);
    if (!r) return;
    this.open.delete(m.id);
    this.o.env.clock.clearTimeout(r.timer);
    if (m.ok) {
      const slot = m.slot ?? 0;
      r.resolve({
        epoch: m.epoch ?? current.epoch,
        members: [...(m.members ?? current.members)],
        startSlot: slot + 1,
        slot,
      });
    } else {
      const msg = m.error ?? 'the configuration change failed';
      r.reject(new ConfigChangeError(m.code ?? 'ABORTED', msg, m.maybeChosen ?? false, m.leaderHint));
    }
  }

  /** Rejects every open request (the replica stopped). */
  stop(err: Error): void {
    for (const r of this.open.values()) {
      this.o.env.clock.clearTimeout(r.timer);
      r.reject(err);
    }
    this.open.clear();
  }
}
