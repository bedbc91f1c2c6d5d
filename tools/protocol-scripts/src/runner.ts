/**
 * Runs the commands of a script against one role machine (a `RoleAdapter`) and returns what each
 * printed. The commands every role shares are here:
 *
 * - `init key=value…` — creates the role with these input options (once, first; a script that starts
 *   with another command gets the role's defaults)
 * - `advance <ms>` — moves virtual time, firing the role's timers that fall due
 * - `ticks n=<count> every=<ms>` — `n` times: advance `every` ms, then send `tick`; each output line
 *   is prefixed with the virtual time, `[t=150]`
 * - `mute <type>…` / `unmute <type>…` — leave messages of these types out of the output
 * - `status` — the few facts the role's adapter chooses to show
 * - `<message type> field=value…` — a protocol message or one of the role's internal events
 */
import type { Message } from '@decree/protocol';
import { SimScheduler } from '@decree/bus';
import { LOCAL_TYPES, buildEvent, renderFields, renderLine } from './messages.ts';
import { ArgReader, ScriptError, type ScriptCommand, parseIntStrict } from './syntax.ts';

/** XState's `clock` option. */
export interface ScriptClock {
  setTimeout(fn: (...args: unknown[]) => void, timeout: number): unknown;
  clearTimeout(id: unknown): void;
}

export interface ScriptIO {
  readonly sched: SimScheduler;
  readonly clock: ScriptClock;
  readonly ring: string;
  /** the role's replica id (init's `self=`) */
  readonly self: string;
  /** the role sent a message */
  send(m: Message): void;
  /** any other effect worth a line: a store write, a call into the state machine, an error */
  note(line: string): void;
}

export type ScriptEvent = { type: string } & Record<string, unknown>;

export interface RoleAdapter {
  /** the replica id the role runs as when init names none */
  readonly defaultSelf: string;
  /** the event types (protocol messages and internal events) a script may send the role */
  readonly events: ReadonlySet<string>;
  /** the events among them that are not protocol messages although a message type has their name */
  readonly internal?: ReadonlySet<string>;
  /** creates and starts the role's actor; reads init's options from `args` */
  init(args: ArgReader, io: ScriptIO): void;
  send(event: ScriptEvent): void;
  /** one line of the few facts `status` prints */
  status(): string;
  /** a command of this role only (the acceptor's `sync`): false when it is not one */
  command?(name: string, args: ArgReader): boolean;
}

type Entry =
  | { kind: 'msg'; type: string; key: string; head: string; tos: string[]; fields: ReturnType<typeof renderFields> }
  | { kind: 'note'; text: string };

export interface ScriptRunnerOptions {
  ring?: string;
}

export class ScriptRunner {
  readonly sched = new SimScheduler(1);
  private entries: Entry[] = [];
  private readonly muted = new Set<string>();
  private started = false;
  private self: string;
  private readonly ring: string;
  private readonly io: ScriptIO;

  constructor(
    private readonly adapter: RoleAdapter,
    opts: ScriptRunnerOptions = {},
  ) {
    this.ring = opts.ring ?? 'ring';
    this.self = adapter.defaultSelf;
    const sched = this.sched;
    const currentSelf = () => this.self;
    this.io = {
      sched,
      clock: { setTimeout: (fn, ms) => sched.after(ms, fn), clearTimeout: (h) => sched.cancel(h) },
      ring: this.ring,
      get self() {
        return currentSelf();
      },
      send: (m) => this.onSend(m),
      note: (text) => this.entries.push({ kind: 'note', text }),
    };
  }

  /** Runs one command; returns its output lines (`ok` when it printed nothing). */
  run(cmd: ScriptCommand): string[] {
    const args = new ArgReader(cmd);
    if (cmd.name === 'init') {
      if (this.started) throw new ScriptError('init: the role is already running (init comes first, once)');
      this.self = args.str('self', this.adapter.defaultSelf);
      this.start(args);
      return this.flush();
    }
    if (!this.started) this.start(new ArgReader({ name: 'init', args: [], line: cmd.line, text: 'init' }));
    let lines: string[] | undefined;
    switch (cmd.name) {
      case 'advance': {
        const [ms, ...more] = args.positional();
        if (ms === undefined || more.length) throw new ScriptError('advance <ms>');
        this.sched.runFor(parseIntStrict(ms, 'advance'));
        break;
      }
      case 'ticks': {
        const n = args.int('n');
        const every = args.int('every');
        lines = [];
        for (let i = 0; i < n; i++) {
          this.sched.runFor(every);
          this.adapter.send({ type: 'tick' });
          for (const l of this.render()) lines.push(`[t=${this.sched.now()}] ${l}`);
        }
        break;
      }
      case 'mute':
      case 'unmute': {
        const types = args.positional();
        if (types.length === 0) throw new ScriptError(`${cmd.name} <message type>…`);
        for (const t of types) {
          if (cmd.name === 'mute') this.muted.add(t);
          else this.muted.delete(t);
        }
        break;
      }
      case 'status':
        this.io.note(this.adapter.status());
        break;
      default:
        if (this.adapter.command?.(cmd.name, args)) break;
        if (!this.adapter.events.has(cmd.name)) throw new ScriptError(`unknown command: ${cmd.name}`);
        this.adapter.send(buildEvent(cmd.name, args, this.ring, this.self, this.adapter.internal?.has(cmd.name)));
    }
    args.done();
    if (lines) return lines.length > 0 ? lines : ['ok'];
    return this.flush();
  }

  private start(args: ArgReader): void {
    this.adapter.init(args, this.io);
    args.done();
    this.started = true;
  }

  private onSend(m: Message): void {
    if (this.muted.has(m.type)) return;
    const fields = renderFields(m);
    let head = `> ${m.type}`;
    if (m.from !== this.self) head += ` from=${m.from}`;
    if (m.ring !== this.ring) head += ` ring=${m.ring}`;
    const key = `${head}|${JSON.stringify(fields)}`;
    const last = this.entries[this.entries.length - 1];
    // the same message to several replicas (a broadcast) prints once: `to=r1,r2,r3`
    if (last && last.kind === 'msg' && last.key === key && !last.tos.includes(m.to)) {
      last.tos.push(m.to);
      return;
    }
    this.entries.push({ kind: 'msg', type: m.type, key, head, tos: [m.to], fields });
  }

  private render(): string[] {
    const out: string[] = [];
    for (const e of this.entries) {
      if (e.kind === 'note') {
        out.push(e.text);
        continue;
      }
      const local = LOCAL_TYPES.has(e.type) && e.tos.length === 1 && e.tos[0] === this.self;
      out.push(...renderLine(local ? e.head : `${e.head} to=${e.tos.join(',')}`, e.fields));
    }
    this.entries = [];
    return out;
  }

  private flush(): string[] {
    const out = this.render();
    return out.length > 0 ? out : ['ok'];
  }
}
