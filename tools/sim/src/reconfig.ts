import type { Rng } from '@decree/bus';
import type { ReplicaId } from '@decree/protocol';
import type { SimCluster } from '@decree/testkit';
import type { SimDisk } from './disk.ts';
import type { RecordingKv } from './recording-machine.ts';

/**
 * Reconfiguration episodes (issue #17, point 2): the windows in which a read-index read may be stale.
 *
 * 1. `start`: a member R of the current configuration C1 (not the leader L) crashes. Members M ("missers",
 *    enough that R and M are a majority of C1) will miss the change. L is asked for a new member set C2
 *    with spares, in which L and the spares (and the members outside R and M) are a majority without R
 *    and M, and which keeps some of R and M: one of them may win phase 1 in C1 later and re-prepare in C2.
 * 2. `changing`: the moment L's proposer has chosen the config value at slot e (it re-prepares), the
 *    links from L to M are cut in the same scheduler step, so M miss the Decide for e and every accept
 *    after it (in some episodes they also crash then): they accepted e but never executed it.
 * 3. `new-config`: once L chose a few slots above e (or after a while), L crashes, whatever the
 *    majority rule of the random faults says.
 * 4. `aftermath`: R restarts with its disk and snapshot store as they were (its state predates e) and
 *    may campaign in the old configuration with X; the links heal, X comes back. The episode ends
 *    after a while; the random faults (and the end of the run) bring the rest back.
 */
export interface EpisodeHost {
  readonly c: SimCluster<RecordingKv>;
  readonly rng: Rng;
  readonly disks: ReadonlyMap<ReplicaId, SimDisk>;
  trace(line: string): void;
  /** the newest configuration a live replica runs */
  current(): { epoch: number; members: readonly ReplicaId[] };
}

type Phase =
  | { k: 'idle' }
  | {
      k: 'changing' | 'new-config' | 'aftermath';
      leader: ReplicaId;
      r: ReplicaId;
      misses: ReplicaId[];
      crashX: boolean;
      /** the slot of the config value, once chosen */
      e: number;
      /** slots above e the new configuration must choose before the leader crashes */
      extra: number;
      until: number;
      unsubscribe?: () => void;
    };

export interface EpisodeStats {
  started: number;
  /** the config value was chosen while the episode watched (a re-prepare followed) */
  chosen: number;
  /** the leader crashed just after choosing slots in the new configuration */
  leaderCrashes: number;
  /** R restarted from its state from before the change */
  staleRestarts: number;
}

export class ReconfigEpisodes {
  private phase: Phase = { k: 'idle' };
  readonly stats: EpisodeStats = { started: 0, chosen: 0, leaderCrashes: 0, staleRestarts: 0 };
  private readonly t = (): string => this.h.c.sched.now().toFixed(1);

  constructor(private readonly h: EpisodeHost) {}

  get active(): boolean {
    return this.phase.k !== 'idle';
  }

  /** Starts an episode when a leader of a configuration of 3 or more members is up. */
  async start(): Promise<void> {
    const { c, rng } = this.h;
    if (this.active) return;
    const leader = c.leader();
    if (!leader || c.leaders().length !== 1) return;
    const cur = this.h.current().members;
    const others = cur.filter((m) => m !== leader && c.nodes.get(m)!.replica);
    if (!cur.includes(leader) || others.length < 2 || others.length + 1 < cur.length) return;
    const shuffle = <T>(a: readonly T[]): T[] => [...a].sort(() => rng.next() - 0.5);
    const quorum = (k: number) => Math.floor(k / 2) + 1;
    const [r, ...rest] = shuffle(others) as [ReplicaId, ...ReplicaId[]];
    // most episodes: R and the missers are a majority of C1 (they can elect one of them without L)
    const misses = rng.chance(0.85) ? rest.slice(0, quorum(cur.length) - 1) : [];
    const stay = cur.filter((m) => m !== r && !misses.includes(m)); // L and the members that follow L
    const spares = c.ids.filter((id) => !cur.includes(id));
    const add = shuffle(spares).slice(0, rng.int(1, Math.max(1, spares.length)));
    if (add.length === 0) return;
    // some of R and the missers stay in C2, as long as L, the followers and the spares are a majority of it
    let kept = shuffle([r, ...misses]).filter(() => rng.chance(0.7));
    const fits = () => stay.length + add.length >= quorum(stay.length + add.length + kept.length);
    while (kept.length > 0 && !fits()) kept = kept.slice(1);
    if (kept.length === 0 && misses.length > 0 && rng.chance(0.8)) return; // nobody stale would re-prepare
    const next = [...stay, ...add, ...kept].sort();
    if (next.length < 3 || !fits()) return;
    this.stats.started++;
    const crashX = misses.length > 0 && rng.chance(0.2);
    this.h.trace(
      `${this.t()} episode: crash ${r}, ${leader} changes ${cur.join(',')} -> ${next.join(',')}` +
        `${misses.length ? `, ${misses.join(',')} will miss the decide${crashX ? ' and crash' : ''}` : ''}`,
    );
    await c.crash(r);
    // slow disks on the new members in some episodes: a promise waits for its sync, a read-confirm does not
    if (rng.chance(0.5))
      for (const m of add) {
        const d = this.h.disks.get(m);
        if (d) d.opts = { ...d.opts, maxSyncMs: 5 + rng.next() * 40 };
      }
    const ph: Phase = {
      k: 'changing',
      leader,
      r,
      misses,
      crashX,
      e: 0,
      extra: rng.int(1, 8),
      until: c.sched.now() + 2_500,
    };
    this.phase = ph;
    // the moment the config value is chosen: cut X's link from the leader (the Decide in flight is lost)
    let pending = 0;
    const sub = c.replica(leader).proposer.subscribe((snap) => {
      const ctx = snap.context;
      const pc = ctx.pendingConfig;
      // our change only (a change asked by the random faults may be in flight instead)
      if (pc) pending = pc.members.length === next.length && pc.members.every((m) => next.includes(m)) ? pc.slot : 0;
      if (ph.k === 'changing' && pending > 0 && ctx.chosenUpTo >= pending && ctx.config.startSlot === pending + 1) {
        ph.e = pending;
        ph.k = 'new-config';
        ph.until = c.sched.now() + 600;
        this.stats.chosen++;
        for (const m of ph.misses) c.net.cutLink(leader, m, false);
      }
    });
    ph.unsubscribe = () => sub.unsubscribe();
    c.replica(leader)
      .changeConfiguration(next)
      .then(
        (res) =>
          this.h.trace(
            `${this.t()} episode: config epoch ${res.epoch} at slot ${res.slot}: ` + `${res.members.join(',')}`,
          ),
        (err: Error & { code?: string }) => {
          this.h.trace(`${this.t()} episode: config refused: ${err.code ?? ''} ${err.message}`);
          if (ph.k === 'changing') ph.until = 0; // the next step ends the episode
        },
      );
  }

  /** Advances the episode; called once per client round. */
  async step(): Promise<void> {
    const ph = this.phase;
    if (ph.k === 'idle') return;
    const { c, rng } = this.h;
    const now = c.sched.now();
    const leaderUp = !!c.nodes.get(ph.leader)!.replica;
    if (ph.k === 'changing') {
      if (now < ph.until && leaderUp) return;
      this.h.trace(`${this.t()} episode: the change was not chosen in time`);
      await this.aftermath(ph, false);
      return;
    }
    if (ph.k === 'new-config') {
      if (ph.crashX)
        for (const m of ph.misses) {
          if (!c.nodes.get(m)!.replica) continue;
          this.h.trace(`${this.t()} episode: crash ${m} (it missed the decide of slot ${ph.e})`);
          await c.crash(m);
        }
      if (!leaderUp) {
        await this.aftermath(ph, false);
        return;
      }
      const p = c.replica(ph.leader).proposer.getSnapshot();
      const far =
        p.matches('leading') &&
        !p.matches({ leading: { reconfiguring: 're-preparing' } }) &&
        p.context.chosenUpTo >= ph.e + ph.extra;
      if (!far && now < ph.until) return;
      this.h.trace(
        `${this.t()} episode: crash leader ${ph.leader} ` + `(chosen up to ${p.context.chosenUpTo}, config at ${ph.e})`,
      );
      this.stats.leaderCrashes++;
      await c.crash(ph.leader);
      await this.aftermath(ph, rng.chance(0.5));
      return;
    }
    if (now < ph.until) return;
    this.h.trace(`${this.t()} episode ends`);
    c.net.heal();
    this.phase = { k: 'idle' };
  }

  /** The faults stop: no more cuts or crashes from the episode (the run restarts and heals everything). */
  stop(): void {
    if (this.phase.k !== 'idle') this.phase.unsubscribe?.();
    this.phase = { k: 'idle' };
  }

  /** R restarts from its old state; X comes back; the links heal now or when the episode ends. */
  private async aftermath(ph: Exclude<Phase, { k: 'idle' }>, healLater: boolean): Promise<void> {
    const { c, rng } = this.h;
    ph.unsubscribe?.();
    if (!c.nodes.get(ph.r)!.replica) {
      this.h.trace(`${this.t()} episode: restart ${ph.r} (down since before the change)`);
      this.stats.staleRestarts++;
      await c.restart(ph.r);
    }
    for (const m of ph.misses) {
      if (c.nodes.get(m)!.replica) continue;
      this.h.trace(`${this.t()} episode: restart ${m}`);
      await c.restart(m);
    }
    if (!healLater) c.net.heal();
    ph.k = 'aftermath';
    ph.until = c.sched.now() + rng.int(300, 900);
  }
}
