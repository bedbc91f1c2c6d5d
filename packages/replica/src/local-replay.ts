import {
  type Configuration,
  type RecoveredState,
  type Slot,
  type SlotValue,
  type StateMachine,
  CONTRACTS,
  DECIDED_META,
  EXECUTED_META,
  compareBallots,
  decodeDecidedMeta,
  decodeSlotMeta,
  ensures,
} from '@decree/protocol';

/** What a restart replayed from its own log before any role started. */
export interface LocalReplay {
  /** the last slot replayed (the snapshot's slot when nothing was) */
  upTo: Slot;
  /** the replayed slots, ascending (the learner serves them to peers) */
  slots: { slot: Slot; value: SlotValue }[];
  commands: number;
  /** the configuration as of upTo, when a replayed slot changed it */
  config: Configuration | undefined;
  /** how far the exec-mark and the last durable Decide proved the log chosen */
  markedUpTo: Slot;
  decidedUpTo: Slot;
  ms: number;
}

/**
 * The value of `slot` that the local log proves chosen, if it does:
 * - up to the executed mark: the learner executed it, so the `chosen` fill record (a value that came
 *   from a peer) or else the acceptor's highest-ballot accepted value is the chosen one (a value
 *   accepted after the slot was chosen can only be the chosen value);
 * - up to the last durable Decide(b, upTo): a value accepted at a ballot >= b is the chosen one.
 */
export function provenValue(
  s: RecoveredState,
  slot: Slot,
  markedUpTo: Slot,
  decided: ReturnType<typeof decodeDecidedMeta>,
): SlotValue | undefined {
  const fill = s.chosen?.get(slot);
  if (fill) return fill;
  const a = s.accepted.get(slot);
  if (!a) return undefined;
  if (slot <= markedUpTo) return a.value;
  if (decided && slot <= decided.upTo && compareBallots(a.ballot, decided.ballot) >= 0) return a.value;
  return undefined;
}

/**
 * Local recovery first: applies to the state machine (restored to `fromSlot`) every slot after it
 * that the replica's own durable log proves chosen, in order, stopping at the first slot it does
 * not. Runs before any role starts, so a restarted replica campaigns and serves only once its
 * state is as far as its disk allows; restart time is bounded by local read speed, not the network.
 */
export function replayLocalLog(
  s: RecoveredState,
  fromSlot: Slot,
  sm: StateMachine,
  onApplyError?: (err: unknown, slot: Slot) => void,
): LocalReplay {
  const t0 = performance.now();
  const markedUpTo = decodeSlotMeta(s.meta.get(EXECUTED_META));
  const decided = decodeDecidedMeta(s.meta.get(DECIDED_META));
  const last = Math.max(markedUpTo, decided?.upTo ?? 0);
  const slots: { slot: Slot; value: SlotValue }[] = [];
  let config: Configuration | undefined;
  let commands = 0;
  let slot = fromSlot;
  while (slot < last) {
    const v = provenValue(s, slot + 1, markedUpTo, decided);
    if (v === undefined) break;
    slot++;
    slots.push({ slot, value: v });
    if (v.k === 'batch') {
      sm.beforeBatch?.(slot, v.at);
      for (const c of v.cmds) {
        try {
          sm.apply(c, slot);
        } catch (err) {
          onApplyError?.(err, slot);
        }
      }
      sm.afterBatch?.(slot);
      commands += v.cmds.length;
    } else if (v.k === 'config') config = { epoch: v.epoch, members: [...v.members], startSlot: slot + 1 };
  }
  CONTRACTS &&
    ensures(slot >= fromSlot && slots.length === slot - fromSlot, 'replay: a contiguous run after the snapshot');
  return {
    upTo: slot,
    slots,
    commands,
    config,
    markedUpTo,
    decidedUpTo: decided?.upTo ?? 0,
    ms: performance.now() - t0,
  };
}
