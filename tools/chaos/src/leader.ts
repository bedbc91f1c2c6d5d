import type { ChaosCluster } from './cluster.ts';
import { sleep } from './cluster.ts';

export type TargetRole = 'leader' | 'follower' | 'spare';

/**
 * Polls DECREE STATUS in the background: who leads, and the configuration the leader runs. The
 * answer is a hint (it may be a poll old), used to aim load and faults, never to judge correctness.
 */
export class LeaderTracker {
  leader: string | undefined;
  members: string[];
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly cluster: ChaosCluster,
    initialMembers: readonly string[],
    private readonly everyMs = 250,
  ) {
    this.members = [...initialMembers];
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.poll();
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** One round: the first running replica that says it leads wins; its members become ours. */
  async poll(): Promise<string | undefined> {
    const ids = this.cluster.ids.filter((id) => this.cluster.isRunning(id));
    const st = await Promise.all(ids.map((id) => this.cluster.status(id, 800)));
    const lead = st.find((s) => s?.role === 'leader');
    if (lead) {
      this.leader = lead.id;
      if (lead.members?.length) this.members = [...lead.members];
    } else {
      const named = st.find((s) => s?.leader && s.members?.includes(s.leader));
      this.leader = named?.leader;
    }
    return this.leader;
  }

  roleOf(id: string): TargetRole {
    if (id === this.leader) return 'leader';
    return this.members.includes(id) ? 'follower' : 'spare';
  }
}
