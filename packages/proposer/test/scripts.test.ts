// Protocol scripts of the proposer: testdata/*.txt, run and compared as text
// (UPDATE_GOLDEN=1 npx vitest run packages/proposer rewrites the expected outputs).
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
  fmtBallot,
  parseField,
  runGoldenFile,
  scriptFiles,
  wantsUpdate,
} from '@decree/protocol-scripts';
import type { Configuration } from '@decree/protocol';
import { type ProposerEvent, type ProposerInput, type ProposerOptions, proposerMachine } from '../src/index.ts';
import { stateInvariants } from './harness.ts';

const OPTIONS: readonly Exclude<keyof ProposerOptions, 'packProposals'>[] = [
  'maxInflightSlots',
  'maxBatchCmds',
  'maxBatchBytes',
  'retransmitMs',
  'maxRetransmitMs',
  'maxQueuedCommands',
  'maxQueuedBytes',
];

/**
 * init options: `self=` (r1), `members=(r1,r2,r3)`, `inc=` (1), `executedUpTo=`, `maxRound=`,
 * `config=e2:r1,r2,r4@6` (the configuration as of executedUpTo) and the ProposerOptions by name.
 * Time: `now` is the scheduler's virtual time; the proposer's timers are its `tick` events.
 */
class ProposerScript implements RoleAdapter {
  readonly defaultSelf = 'r1';
  readonly events = new Set([
    'campaign',
    'resign',
    'promise',
    'accepted',
    'nack',
    'progress',
    'submit',
    'config-proposal',
    'set-observers',
    'tick',
    'set-members',
    'stop',
  ]);
  private actor!: Actor<typeof proposerMachine>;
  private io!: ScriptIO;

  init(args: ArgReader, io: ScriptIO): void {
    this.io = io;
    const options: Partial<ProposerOptions> = {};
    for (const k of OPTIONS) if (args.has(k)) options[k] = args.int(k);
    const members = parseField('members', args.str('members', '(r1,r2,r3)')) as string[];
    const input: ProposerInput = {
      ring: io.ring,
      self: io.self,
      inc: args.int('inc', 1),
      members,
      send: (m) => io.send(m),
      now: () => io.sched.now(),
      options,
    };
    if (args.has('executedUpTo')) input.executedUpTo = args.int('executedUpTo');
    if (args.has('maxRound')) input.maxRound = args.int('maxRound');
    const config = args.raw('config');
    if (config !== undefined) input.configuration = parseField('config', config) as Configuration;
    this.actor = createActor(proposerMachine, { input, clock: io.clock });
    this.actor.subscribe({ error: (e) => io.note(`error: ${(e as Error).message}`) });
    this.actor.start();
  }

  send(event: ScriptEvent): void {
    this.actor.send(event as unknown as ProposerEvent);
    // the substates agree with the data after every event (harness.ts): a broken rule shows in the output
    const bad = stateInvariants(this.actor.getSnapshot());
    if (bad) this.io.note(`state invariant: ${bad}`);
  }

  /** The one fact `status` shows: the ballot it prepares or leads with (its last one). */
  status(): string {
    return `ballot=${fmtBallot(this.actor.getSnapshot().context.ballot)}`;
  }
}

const update = wantsUpdate(process.env.UPDATE_GOLDEN);
const dir = fileURLToPath(new URL('../testdata', import.meta.url));

describe('proposer protocol scripts (testdata/*.txt)', () => {
  for (const file of scriptFiles(dir)) {
    it(basename(file), () => {
      const runner = new ScriptRunner(new ProposerScript());
      const r = runGoldenFile(file, (c) => runner.run(c), update);
      if (!update) expect(r.actual).toBe(r.expected);
    });
  }
});
