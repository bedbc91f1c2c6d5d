// Protocol scripts of the acceptor: testdata/*.txt, run and compared as text
// (UPDATE_GOLDEN=1 npx vitest run packages/acceptor rewrites the expected outputs).
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Actor, createActor } from 'xstate';
import {
  type ArgReader,
  type RoleAdapter,
  type ScriptEvent,
  type ScriptIO,
  ScriptError,
  ScriptRunner,
  ScriptStore,
  fmtBallot,
  parseField,
  runGoldenFile,
  scriptFiles,
  wantsUpdate,
} from '@decree/protocol-scripts';
import {
  type AcceptedEntry,
  type RecoveredState,
  EXECUTED_META,
  emptyRecoveredState,
  encodeSlotMeta,
} from '@decree/protocol';
import { type AcceptorEvent, type AcceptorInput, acceptorMachine } from '../src/index.ts';

/**
 * init options: `self=`, the recovered state (`promised=3.r2`, `accepted=[slot:ballot:value …]`,
 * `truncatedBelow=`, `executed=` the exec-mark meta), the documented inputs (`executedUpTo=`,
 * `maxPromiseBytes=`, `fullRetryMs=`, `pressureFraction=`, `refuse=(r3)`: acceptMessageFrom says no
 * to these leaders) and the store's `used=`/`capacity=` (usage(); none by default).
 * Commands: `sync`, `sync fail`, `sync full` (completes the oldest pending append), `usage used=
 * capacity=`, `restart` (a crash: unsynced appends are lost; the acceptor starts on what was synced).
 */
class AcceptorScript implements RoleAdapter {
  readonly defaultSelf = 'r1';
  readonly events = new Set(['prepare', 'accept', 'read-confirm', 'exec-mark', 'log-truncate', 'stop']);
  private io!: ScriptIO;
  private store!: ScriptStore;
  private actor!: Actor<typeof acceptorMachine>;
  private options: Partial<AcceptorInput> = {};

  init(args: ArgReader, io: ScriptIO): void {
    this.io = io;
    const rec = emptyRecoveredState();
    const promised = args.raw('promised');
    if (promised !== undefined) rec.promised = parseField('ballot', promised) as RecoveredState['promised'];
    const accepted = args.raw('accepted');
    if (accepted !== undefined) {
      for (const e of parseField('accepted', accepted) as AcceptedEntry[]) {
        rec.accepted.set(e.slot, { ballot: e.ballot, value: e.value });
      }
    }
    rec.truncatedBelow = args.int('truncatedBelow', 0);
    const executed = args.int('executed', 0);
    if (executed > 0) rec.meta.set(EXECUTED_META, encodeSlotMeta(executed));
    if (args.has('executedUpTo')) this.options.executedUpTo = args.int('executedUpTo');
    if (args.has('maxPromiseBytes')) this.options.maxPromiseBytes = args.int('maxPromiseBytes');
    if (args.has('fullRetryMs')) this.options.fullRetryMs = args.int('fullRetryMs');
    if (args.has('pressureFraction')) this.options.pressureFraction = args.num('pressureFraction');
    const refuse = args.raw('refuse');
    if (refuse !== undefined) {
      const refused = parseField('members', refuse) as string[];
      this.options.acceptMessageFrom = (leader) => !refused.includes(leader);
    }
    this.store = new ScriptStore((l) => io.note(l), rec);
    this.readUsage(args, false);
    this.start(this.store.recovered());
  }

  private readUsage(args: ArgReader, required: boolean): void {
    if (!required && !args.has('used') && !args.has('capacity')) return;
    this.store.usageValue = { usedBytes: args.int('used'), capacityBytes: args.int('capacity') };
  }

  private start(recovered: RecoveredState): void {
    const io = this.io;
    this.actor = createActor(acceptorMachine, {
      input: {
        ring: io.ring,
        self: io.self,
        store: this.store,
        recovered,
        send: (m) => io.send(m),
        onStoreError: (err) => io.note(`store-error: ${err.message}`),
        now: () => io.sched.now(),
        ...this.options,
      },
      clock: io.clock,
    });
    this.actor.subscribe({ error: (e) => io.note(`error: ${(e as Error).message}`) });
    this.actor.start();
  }

  send(event: ScriptEvent): void {
    this.actor.send(event as unknown as AcceptorEvent);
  }

  command(name: string, args: ArgReader): boolean {
    switch (name) {
      case 'sync': {
        const p = args.positional();
        const outcome = p[0] ?? 'ok';
        if (p.length > 1 || (outcome !== 'ok' && outcome !== 'fail' && outcome !== 'full')) {
          throw new ScriptError('sync [fail|full]');
        }
        if (!this.store.complete(outcome)) this.io.note('no write pending');
        return true;
      }
      case 'usage':
        this.readUsage(args, true);
        return true;
      case 'restart': {
        const lost = this.store.crash();
        this.actor.stop();
        if (lost > 0) this.io.note(`lost ${lost} unsynced append${lost > 1 ? 's' : ''}`);
        delete this.options.executedUpTo;
        if (args.has('executedUpTo')) this.options.executedUpTo = args.int('executedUpTo');
        this.start(this.store.recovered());
        return true;
      }
      default:
        return false;
    }
  }

  /** The one fact `status` shows: the promised ballot. */
  status(): string {
    return `promised=${fmtBallot(this.actor.getSnapshot().context.promised)}`;
  }
}

const update = wantsUpdate(process.env.UPDATE_GOLDEN);
const dir = fileURLToPath(new URL('../testdata', import.meta.url));

describe('acceptor protocol scripts (testdata/*.txt)', () => {
  for (const file of scriptFiles(dir)) {
    it(basename(file), () => {
      const runner = new ScriptRunner(new AcceptorScript());
      const r = runGoldenFile(file, (c) => runner.run(c), update);
      if (!update) expect(r.actual).toBe(r.expected);
    });
  }
});
