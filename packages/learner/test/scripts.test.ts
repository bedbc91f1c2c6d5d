// Protocol scripts of the learner: testdata/*.txt, run and compared as text
// (UPDATE_GOLDEN=1 npx vitest run packages/learner rewrites the expected outputs).
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Actor, createActor } from 'xstate';
import {
  type ArgReader,
  type RoleAdapter,
  type ScriptEvent,
  type ScriptIO,
  ScriptRunner,
  fmtBytes,
  parseField,
  runGoldenFile,
  scriptFiles,
  wantsUpdate,
} from '@decree/protocol-scripts';
import type { ChosenEntry, Configuration, StateMachine } from '@decree/protocol';
import { type LearnerEvent, type LearnerInput, type LearnerOptions, learnerMachine } from '../src/index.ts';

const OPTIONS: readonly (keyof LearnerOptions)[] = [
  'catchupBatchSlots',
  'catchupMaxBytes',
  'retainSlots',
  'retainBytes',
  'catchupIntervalMs',
];

/**
 * The user's state machine, as a script sees it: one line `apply <slot> (a,b)` per batch executed
 * (no-op and config slots do not reach it); each command's result is `ok:<command>`; a command
 * `boom` throws.
 */
class ScriptMachine implements StateMachine {
  private cmds: string[] = [];
  constructor(private readonly note: (line: string) => void) {}
  beforeBatch(): void {
    this.cmds = [];
  }
  apply(command: Uint8Array, slot: number): Uint8Array | undefined {
    const c = fmtBytes(command);
    this.cmds.push(c);
    if (c === 'boom') throw new Error(`boom at slot ${slot}`);
    return new TextEncoder().encode(`ok:${c}`);
  }
  afterBatch(slot: number): void {
    this.note(`apply ${slot} (${this.cmds.join(',')})`);
  }
  async snapshot(): Promise<Uint8Array> {
    return new Uint8Array();
  }
  async restore(): Promise<void> {}
}

/**
 * init options: `self=` (r1), `members=(r1,r2,r3)`, `inc=` (1), `executedUpTo=`, `config=e2:r1,r2,r4@6`,
 * `peers=(…)`, `replayed=[slot:value …]` and the LearnerOptions by name. `onApplyError` prints
 * `apply-error`. The learner tells its snapshotter (this replica's, `to=r1`) how far it executed
 * (`snap-executed`, muted in most scripts) and that a peer no longer holds what it misses (`snap-need`).
 */
class LearnerScript implements RoleAdapter {
  readonly defaultSelf = 'r1';
  readonly events = new Set([
    'learn',
    'decide',
    'catchup-req',
    'catchup-rep',
    'tick',
    'set-members',
    'retain-truncate',
    'bootstrap',
    'stop',
  ]);
  /** the learner's `bootstrap { config }` is its own event, not the client side's Bootstrap message */
  readonly internal = new Set(['bootstrap']);
  private actor!: Actor<typeof learnerMachine>;

  init(args: ArgReader, io: ScriptIO): void {
    const options: Partial<LearnerOptions> = {};
    for (const k of OPTIONS) if (args.has(k)) options[k] = args.int(k);
    const input: LearnerInput = {
      ring: io.ring,
      self: io.self,
      inc: args.int('inc', 1),
      members: parseField('members', args.str('members', '(r1,r2,r3)')) as string[],
      stateMachine: new ScriptMachine((l) => io.note(l)),
      send: (m) => io.send(m),
      now: () => io.sched.now(),
      options,
      onApplyError: (err, slot) => io.note(`apply-error ${slot}: ${(err as Error).message}`),
    };
    if (args.has('executedUpTo')) input.executedUpTo = args.int('executedUpTo');
    const config = args.raw('config');
    if (config !== undefined) input.configuration = parseField('config', config) as Configuration;
    const peers = args.raw('peers');
    if (peers !== undefined) input.peers = parseField('peers', peers) as string[];
    const replayed = args.raw('replayed');
    if (replayed !== undefined) input.replayed = parseField('entries', replayed) as ChosenEntry[];
    this.actor = createActor(learnerMachine, { input, clock: io.clock });
    this.actor.subscribe({ error: (e) => io.note(`error: ${(e as Error).message}`) });
    this.actor.start();
  }

  send(event: ScriptEvent): void {
    this.actor.send(event as unknown as LearnerEvent);
  }

  /** The one fact `status` shows: the slot it executed up to. */
  status(): string {
    return `executedUpTo=${this.actor.getSnapshot().context.executedUpTo}`;
  }
}

const update = wantsUpdate(process.env.UPDATE_GOLDEN);
const dir = fileURLToPath(new URL('../testdata', import.meta.url));

describe('learner protocol scripts (testdata/*.txt)', () => {
  for (const file of scriptFiles(dir)) {
    it(basename(file), () => {
      const runner = new ScriptRunner(new LearnerScript());
      const r = runGoldenFile(file, (c) => runner.run(c), update);
      if (!update) expect(r.actual).toBe(r.expected);
    });
  }
});
