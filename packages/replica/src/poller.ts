import type { Env } from '@decree/bus';

/** What a Poller watches: an actor (its every event re-checks the conditions). */
export interface Watchable {
  subscribe(fn: () => void): { unsubscribe(): void };
}

/**
 * Waits for conditions on a replica's roles (a leader known, a slot executed, a read confirmed):
 * each condition is checked again after every event of the watched actors and on poke().
 */
export class Poller {
  private readonly polls = new Set<() => void>();
  private subs: { unsubscribe(): void }[] = [];

  constructor(
    private readonly env: Env,
    private readonly watched: () => readonly Watchable[],
    private readonly timeoutError: () => Error,
  ) {}

  /** Checks every waiting condition now (a message arrived that the watched actors did not see). */
  poke(): void {
    for (const p of [...this.polls]) p();
  }

  /**
   * Resolves with check()'s value once it is defined; rejects with what check() throws, or after
   * `timeoutMs` (onTimeout's error). `kick` runs once at the start (e.g. the first round of asks).
   */
  waitFor<T>(check: () => T | undefined, timeoutMs: number, kick?: () => void, onTimeout?: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const poll = () => {
        let v: T | undefined;
        try {
          v = check();
        } catch (e) {
          done();
          reject(e);
          return;
        }
        if (v !== undefined) {
          done();
          resolve(v);
        }
      };
      const done = () => {
        this.polls.delete(poll);
        this.env.clock.clearTimeout(timer);
        if (this.polls.size === 0) {
          for (const s of this.subs) s.unsubscribe();
          this.subs = [];
        }
      };
      const timer: unknown = this.env.clock.setTimeout(() => {
        done();
        reject(onTimeout ? onTimeout() : this.timeoutError());
      }, timeoutMs);
      if (this.polls.size === 0) this.subs = this.watched().map((a) => a.subscribe(() => this.poke()));
      this.polls.add(poll);
      kick?.();
      poll();
    });
  }
}
