/**
 * A continuous write load against a cluster of `decree start` processes, recording every
 * ACKNOWLEDGED write, and the check that all of them are present afterwards.
 *
 * Bookkeeping: a SET of a unique key counts once it was answered OK; an INCR counts once it was
 * answered with an integer. An INCR answered with an error or not answered at all (timeout, broken
 * connection) is "in doubt": it may or may not have executed. So each counter must be
 * >= its acknowledged INCRs and <= acknowledged + in doubt, and exactly equal when none was in doubt.
 */
import { expect } from 'vitest';
import { RespClient, RespError, idempotent, resp, sleep, type Cluster } from './helpers.ts';

export const COUNTERS = ['ctr:a', 'ctr:b', 'ctr:c'];

export class WriteLoad {
  readonly setsAcked = new Map<string, string>();
  setsFailed = 0;
  readonly incrAcked = new Map<string, number>(COUNTERS.map((c) => [c, 0]));
  readonly incrDoubt = new Map<string, number>(COUNTERS.map((c) => [c, 0]));
  /** the highest value each counter was seen to have in an acknowledged INCR's reply */
  readonly incrSeen = new Map<string, number>(COUNTERS.map((c) => [c, 0]));
  /** replies of a wrong shape (a bug, never "in doubt") */
  readonly badReplies: string[] = [];
  readonly errors: string[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly cluster: Cluster,
    private readonly ids: string[],
    private readonly workers = 4,
  ) {}

  acked(): number {
    return this.setsAcked.size + [...this.incrAcked.values()].reduce((a, b) => a + b, 0);
  }

  /** Starts `workers` clients; `phase` keeps the unique keys of different phases apart. */
  start(phase: string): void {
    this.running = true;
    this.loops = Array.from({ length: this.workers }, (_, w) => this.worker(phase, w));
  }

  /** Stops the load and waits until every command in flight has an outcome (acked or in doubt). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** One connection at a time, one command in flight; moves to the next replica on any failure. */
  private async worker(phase: string, w: number): Promise<void> {
    const ids = this.ids;
    let target = w % ids.length;
    let client: RespClient | undefined;
    let n = 0;
    while (this.running) {
      if (!client || client.closed) {
        try {
          client = await RespClient.connect(this.cluster.port(ids[target]!), '127.0.0.1', 2000);
        } catch {
          client = undefined;
          target = (target + 1) % ids.length;
          await sleep(100);
          continue;
        }
      }
      n++;
      const isIncr = n % 2 === 0;
      const counter = COUNTERS[(n + w) % COUNTERS.length]!;
      const key = `u:${phase}:${w}:${n}`;
      const value = `v${w}.${n}`;
      let r: unknown;
      try {
        r = await client.call(isIncr ? ['INCR', counter] : ['SET', key, value], 12_000);
        if (r instanceof RespError) throw r;
      } catch (e) {
        if (isIncr) this.incrDoubt.set(counter, this.incrDoubt.get(counter)! + 1);
        else this.setsFailed++;
        if (this.errors.length < 50)
          this.errors.push(`${ids[target]} ${isIncr ? 'INCR' : 'SET'}: ${(e as Error).message}`);
        client.close();
        client = undefined;
        target = (target + 1) % ids.length;
        await sleep(50);
        continue;
      }
      if (isIncr && typeof r === 'number') {
        this.incrAcked.set(counter, this.incrAcked.get(counter)! + 1);
        this.incrSeen.set(counter, Math.max(this.incrSeen.get(counter)!, r));
      } else if (!isIncr && r === 'OK') this.setsAcked.set(key, value);
      else this.badReplies.push(`${isIncr ? 'INCR' : 'SET'} -> ${JSON.stringify(r)}`);
    }
    client?.close();
  }

  /** Every acknowledged write is on every replica (READONLY reads of its own state) and in the log (linearizable). */
  async verify(when: string): Promise<void> {
    expect(this.badReplies).toEqual([]);
    await this.cluster.caughtUp(this.ids, 45_000);
    const keys = [...this.setsAcked.keys()];
    for (const id of this.ids) {
      const c = await RespClient.connect(this.cluster.port(id));
      try {
        expect(await c.call(['READONLY'])).toBe('OK');
        for (let i = 0; i < keys.length; i += 500) {
          const chunk = keys.slice(i, i + 500);
          const got = (await c.call(['MGET', ...chunk])) as (string | null)[];
          const missing = chunk.filter((k, j) => got[j] !== this.setsAcked.get(k));
          expect(missing, `${when}: ${id}: acknowledged keys missing or wrong`).toEqual([]);
        }
        for (const ctr of COUNTERS) {
          const v = Number(await c.call(['GET', ctr]));
          const ack = this.incrAcked.get(ctr)!;
          const doubt = this.incrDoubt.get(ctr)!;
          expect(v, `${when}: ${id} ${ctr}`).toBeGreaterThanOrEqual(ack);
          expect(v, `${when}: ${id} ${ctr}`).toBeGreaterThanOrEqual(this.incrSeen.get(ctr)!);
          expect(v, `${when}: ${id} ${ctr}: more increments than were ever sent`).toBeLessThanOrEqual(ack + doubt);
          if (doubt === 0) expect(v, `${when}: ${id} ${ctr}: no INCR in doubt`).toBe(ack);
        }
      } finally {
        c.close();
      }
    }
    // a linearizable read (idempotent: retried if leadership moves on a loaded machine)
    const vals = (await idempotent(
      `MGET ${COUNTERS.join(' ')} through the leader`,
      async () => resp(this.cluster.port(await this.cluster.leader(30_000)), ['MGET', ...COUNTERS], 10_000),
      45_000,
    )) as string[];
    for (const [i, ctr] of COUNTERS.entries())
      expect(Number(vals[i]), `${when}: linearizable ${ctr}`).toBeGreaterThanOrEqual(this.incrAcked.get(ctr)!);
  }

  summary(): string {
    return (
      `${this.setsAcked.size} SETs acked (${this.setsFailed} failed), ` +
      `INCR acked ${JSON.stringify(Object.fromEntries(this.incrAcked))}, ` +
      `in doubt ${JSON.stringify(Object.fromEntries(this.incrDoubt))}; ` +
      `first errors: ${this.errors.slice(0, 3).join(' | ')}`
    );
  }
}
