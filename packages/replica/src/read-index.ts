import type { Actor } from 'xstate';
import type { Bus, Env } from '@decree/bus';
import { type Ballot, type MessageOf, type ReplicaId, type RingId, type Slot, ballotEq } from '@decree/protocol';
import type { proposerMachine } from '@decree/proposer';
import { NotLeaderError } from './errors.ts';
import type { Poller } from './poller.ts';

/** One read-index confirmation: the ballot, the members asked (the quorum's configuration), the index. */
interface ReadRound {
  ballot: Ballot;
  members: readonly ReplicaId[];
  index: Slot;
  oks: Set<ReplicaId>;
  nos: number;
}

const quorumOf = (n: number): number => Math.floor(n / 2) + 1;

export interface ReadIndexHost {
  ring: RingId;
  self: ReplicaId;
  bus: Bus;
  env: Env;
  poller: Poller;
  proposer: Actor<typeof proposerMachine>;
  executedSlot(): Slot;
  currentLeader(): ReplicaId | undefined;
}

/**
 * Read-index: linearizable reads without a log slot. The leader notes its commit index, asks every
 * acceptor of its configuration whether it still promises the leader's ballot (a round started after
 * the request), and answers with the index once a majority said yes and it executed up to the index
 * (and every slot of earlier leaders). A read of the local state machine then is linearizable: any
 * leader that could have chosen a later write had to win a majority of promises first, and one of
 * them would have said no. No clock assumption. While the leader re-prepares in a configuration that
 * just took effect (or a change is in flight: the proposer is in leading.reconfiguring) the read
 * waits: the slots after the change may hold writes it has not recovered yet (issue #17).
 */
export class ReadIndex {
  private seq = 0;
  private readonly rounds = new Map<number, ReadRound>();

  constructor(private readonly h: ReadIndexHost) {}

  read(timeoutMs: number): Promise<Slot> {
    const h = this.h;
    const seq = ++this.seq;
    let round: ReadRound | undefined;
    let retry: unknown;
    const ask = () => {
      if (!round) return;
      for (const m of round.members)
        if (!round.oks.has(m))
          h.bus.send({ type: 'read-confirm', ring: h.ring, from: h.self, to: m, ballot: round.ballot, seq });
    };
    const again = () => {
      ask();
      retry = h.env.clock.setTimeout(again, 50);
    };
    const out = h.poller.waitFor(
      () => {
        const pc = h.proposer.getSnapshot();
        const p = pc.context;
        if (!pc.matches('leading')) throw new NotLeaderError(h.currentLeader());
        // a config value in flight, or phase 1 again in the configuration it set up
        if (pc.matches({ leading: 'reconfiguring' })) return undefined;
        if (!round || !ballotEq(round.ballot, p.ballot)) {
          // the index and the quorum of the configuration that governs now (the proposer's: the
          // replica's own member list changes only when its learner executes the change)
          round = {
            ballot: p.ballot,
            members: [...p.members],
            index: Math.max(p.chosenUpTo, p.recoveryEnd),
            oks: new Set(),
            nos: 0,
          };
          this.rounds.set(seq, round);
          ask();
          return undefined;
        }
        if (round.nos > 0) throw new NotLeaderError(h.currentLeader());
        if (round.oks.size < quorumOf(round.members.length)) return undefined;
        return h.executedSlot() >= round.index ? round.index : undefined;
      },
      timeoutMs,
      again,
    );
    const cleanup = () => {
      h.env.clock.clearTimeout(retry);
      this.rounds.delete(seq);
    };
    out.then(cleanup, cleanup);
    return out;
  }

  onAck(m: MessageOf<'read-ack'>): void {
    const r = this.rounds.get(m.seq);
    if (!r || !ballotEq(m.ballot, r.ballot) || !r.members.includes(m.from)) return;
    if (m.ok) r.oks.add(m.from);
    else r.nos++;
    this.h.poller.poke();
  }
}
