import type { Bus, Env } from '@decree/bus';
import type { ForwardFailure, MessageOf, ReplicaId, RingId } from '@decree/protocol';
import { BusyError, NotLeaderError } from './errors.ts';
import type { BatchOutcome, CommandFailure } from './submissions.ts';

interface Open {
  n: number;
  leader: ReplicaId;
  resolve(o: BatchOutcome): void;
  timer: unknown;
}

/** Every command of a batch failed the same way. */
export function allFailed(n: number, error: Error, maybeExecuted: boolean): BatchOutcome {
  const failed: CommandFailure[] = [];
  for (let index = 0; index < n; index++) failed.push({ index, error, maybeExecuted });
  return { results: new Array(n), slot: 0, failed };
}

const wireError = (e: Error): string =>
  e instanceof NotLeaderError ? 'NOT_LEADER' : e instanceof BusyError ? 'BUSY' : e.message;

function fromWire(error: string, hint: ReplicaId | undefined, maybeExecuted: boolean): Error {
  if (error === 'NOT_LEADER') return new NotLeaderError(hint, maybeExecuted);
  if (error === 'BUSY') return new BusyError();
  return new Error(error);
}

/**
 * Forwarding of client commands from a follower to the leader (and serving them there). Request ids
 * are scoped to this replica's incarnation: a reply for a request of an earlier run (the TCP transport
 * delivers what was queued before a reconnect) names another incarnation and is dropped. Each command
 * comes back with its own outcome and the slot it executed in (the follower's freshness token).
 */
export class Forwarder {
  private nextId: number;
  private readonly open = new Map<number, Open>();

  constructor(
    private readonly o: {
      ring: RingId;
      self: ReplicaId;
      inc: number;
      bus: Bus;
      env: Env;
      /** the first request id (default 1) */
      firstId?: number;
    },
  ) {
    this.nextId = o.firstId ?? 1;
  }

  get pending(): number {
    return this.open.size;
  }

  /** Forwards to `leader`; without an answer in `timeoutMs` every command is in doubt. */
  request(leader: ReplicaId, cmds: readonly Uint8Array[], timeoutMs: number): Promise<BatchOutcome> {
    const id = this.nextId++;
    const { ring, self, inc, bus, env } = this.o;
    return new Promise((resolve) => {
      const timer = env.clock.setTimeout(() => {
        if (this.open.delete(id)) resolve(allFailed(cmds.length, new NotLeaderError(leader, true), true));
      }, timeoutMs);
      this.open.set(id, { n: cmds.length, leader, resolve, timer });
      bus.send({ type: 'client-req', ring, from: self, to: leader, id, cmds, inc });
    });
  }

  onReply(m: MessageOf<'client-rep'>): void {
    if (m.inc !== undefined && m.inc !== this.o.inc) return; // an answer meant for an earlier run of this replica
    const f = this.open.get(m.id);
    if (!f) return;
    this.open.delete(m.id);
    this.o.env.clock.clearTimeout(f.timer);
    if (m.error !== undefined) {
      // the whole request: refused before it ran (NOT_LEADER, maybeExecuted false), or lost with the leadership
      f.resolve(allFailed(f.n, fromWire(m.error, m.leaderHint, m.maybeExecuted !== false), m.maybeExecuted !== false));
      return;
    }
    const results: (Uint8Array | undefined)[] = new Array(f.n);
    const rs = m.results ?? [];
    for (let i = 0; i < f.n; i++) results[i] = rs[i] ?? undefined;
    const failed = (m.failed ?? [])
      .filter((x) => x.i < f.n)
      .map((x) => ({
        index: x.i,
        error: fromWire(x.error, m.leaderHint, x.maybeExecuted),
        maybeExecuted: x.maybeExecuted,
      }));
    f.resolve(failed.length ? { results, slot: m.slot ?? 0, failed } : { results, slot: m.slot ?? 0 });
  }

  /** On the leader: runs a forwarded request and answers with each command's outcome. */
  serve(
    m: MessageOf<'client-req'>,
    leading: boolean,
    hint: ReplicaId | undefined,
    submitEach: (cmds: readonly Uint8Array[]) => Promise<BatchOutcome>,
  ): void {
    const { ring, self, bus } = this.o;
    const head = {
      type: 'client-rep' as const,
      ring,
      from: self,
      to: m.from,
      id: m.id,
      ...(m.inc !== undefined ? { inc: m.inc } : {}),
    };
    if (!leading) {
      bus.send({
        ...head,
        error: 'NOT_LEADER',
        maybeExecuted: false,
        ...(hint && hint !== self ? { leaderHint: hint } : {}),
      });
      return;
    }
    void submitEach(m.cmds).then((o) => {
      const failed: ForwardFailure[] | undefined = o.failed?.map((x) => ({
        i: x.index,
        error: wireError(x.error),
        maybeExecuted: x.maybeExecuted,
      }));
      const leaderHint = o.failed
        ?.map((x) => x.error)
        .find((e): e is NotLeaderError => e instanceof NotLeaderError)?.leaderHint;
      bus.send({
        ...head,
        results: o.results.map((r) => r ?? null),
        slot: o.slot,
        ...(failed?.length ? { failed } : {}),
        ...(leaderHint ? { leaderHint } : {}),
      });
    });
  }

  /** The replica stops: every open request is in doubt (it may have run on the leader). */
  stop(err: Error): void {
    for (const f of this.open.values()) {
      this.o.env.clock.clearTimeout(f.timer);
      f.resolve(allFailed(f.n, err, true));
    }
    this.open.clear();
  }
}
