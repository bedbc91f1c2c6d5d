import type { Actor } from 'xstate';
import type { Bus } from '@decree/bus';
import type { Message, ReplicaId, RingId, Role } from '@decree/protocol';
import { fastLane } from './fast-lane.ts';

/**
 * The roles whose events take the fast lane: those on the path of every command, and the snapshotter and
 * the config-manager, which hear a tick every 10 ms (XState's macrostep for those ticks was most of an
 * idle replica's CPU). The elector's timers are XState's own (`after`), so it keeps XState's path.
 */
const LANE_ROLES: ReadonlySet<Role> = new Set(['acceptor', 'learner', 'proposer', 'snapshotter', 'config-manager']);

/** The role actors of one replica, by the name the bus routes to. */
export type RoleActors = Record<Exclude<Role, 'client'>, Actor<any>>;

/** How an event reaches a role's actor: its fast lane, or `actor.send`. */
export type Deliver = (event: { type: string }) => void;

/**
 * Registers each role's actor (and the replica's client side) for its messages on the bus; returns
 * the unregister functions. Messages reach a role only as events of its machine. `deliver` gets each
 * role's way in (the same lane for the bus and for its ticks: one queue per actor).
 */
export function registerRoles(
  bus: Bus,
  ring: RingId,
  self: ReplicaId,
  roles: RoleActors,
  client: (m: Message) => void,
  fast = false,
  deliver?: Map<Actor<any>, Deliver>,
): (() => void)[] {
  const out: (() => void)[] = [];
  for (const [role, actor] of Object.entries(roles) as [Role, Actor<any>][]) {
    // decision 0014
    const lane = fastLane(actor, fast && LANE_ROLES.has(role));
    deliver?.set(actor, lane);
    out.push(bus.register(ring, self, role, (m) => lane(m)));
  }
  out.push(bus.register(ring, self, 'client', client));
  return out;
}

/** Calls `onFailure` with the role's name when one of the actors fails (throws in a handler). */
export function watchFailures(roles: RoleActors, onFailure: (role: string, e: unknown) => void): void {
  for (const [role, a] of Object.entries(roles)) a.subscribe({ error: (e: unknown) => onFailure(role, e) });
}

/**
 * One log line per kind of event, at most every `everyMs` (a full store is retried every second: one
 * line per 10 s says it, not ten).
 */
export function rateLimited(
  now: () => number,
  log: ((level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void) | undefined,
  fields: Record<string, unknown>,
  everyMs = 10_000,
): (level: 'info' | 'warn' | 'error', kind: string, msg: string) => void {
  const reported = new Map<string, number>();
  return (level, kind, msg) => {
    const t = now();
    const last = reported.get(kind);
    if (last !== undefined && t - last < everyMs) return;
    reported.set(kind, t);
    log?.(level, msg, fields);
  };
}

/**
 * Sends `tick` to the actors every `tickMs` until `stopped()`; returns a function that stops it. An
 * actor with a way in in `deliver` (its fast lane) gets its ticks that way: the proposer's and the
 * learner's ticks were a third of an idle replica's CPU through XState's macrostep.
 */
export function startTicking(
  clock: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(h: unknown): void },
  tickMs: number,
  actors: readonly Actor<any>[],
  deliver?: ReadonlyMap<Actor<any>, Deliver>,
): () => void {
  let timer: unknown;
  let on = true;
  const sends: Deliver[] = actors.map((a) => deliver?.get(a) ?? ((e) => a.send(e)));
  const tick = () => {
    if (!on) return;
    for (const send of sends) send({ type: 'tick' });
    timer = clock.setTimeout(tick, tickMs);
  };
  timer = clock.setTimeout(tick, tickMs);
  return () => {
    on = false;
    clock.clearTimeout(timer);
  };
}
