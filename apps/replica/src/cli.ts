#!/usr/bin/env node
/**
 * decree: run and inspect replicas of a Decree KV cluster.
 *   decree start --config cluster.json --id r1
 *   decree start --role acceptor --config cluster.json --id r1 [--inc N]   (one role as this process, NATS)
 *   decree status --config cluster.json [--id r1]
 *   decree config get|add|remove|replace|set … --config cluster.json
 *   decree replay --dir <dataDir>/<id>/<ring> [--to-slot N] [--snapshot-out DIR]
 */
import net from 'node:net';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { pino } from 'pino';
import { ConfigError, loadConfig } from './config.ts';
import { startNode } from './node.ts';
import { resolveTracing } from './tracing.ts';
import { contractsWanted, setContracts } from '@decree/protocol';

// a program (not a library) reads the environment: DECREE_CONTRACTS=1 turns the code contracts on
setContracts(contractsWanted(process.env.DECREE_CONTRACTS));

class UsageError extends Error {}

/** Prints one line per problem (no stack trace for the operator's mistakes) and exits 1. */
function fail(e: unknown): never {
  if (e instanceof ConfigError) for (const issue of e.issues) console.error(`decree: ${issue}`);
  else if (e instanceof UsageError) console.error(`decree: ${e.message}`);
  else if (e instanceof Error && 'code' in e && (e as NodeJS.ErrnoException).code === 'EADDRINUSE')
    console.error(
      `decree: address in use: ${(e as Error).message.replace(/^listen EADDRINUSE: address already in use /, '')}`,
    );
  // an operational failure (a file system error, storage that cannot open): its message is enough
  else if (
    e instanceof Error &&
    (typeof (e as NodeJS.ErrnoException).code === 'string' ||
      e.name === 'StorageError' ||
      e.name === 'StorageCorruptionError')
  )
    console.error(`decree: ${e.message.replace(/\s*\n\s*/g, ' ')}`);
  else console.error(`decree: ${(e as Error)?.stack ?? String(e)}`); // a bug: the stack helps
  process.exit(1);
}

/**
 * Sends one RESP command and reads one bulk reply (for status queries); with `password`, an AUTH
 * goes first (in the same write) and its "+OK" is skipped.
 */
function respQuery(host: string, port: number, args: string[], password?: string, timeoutMs = 2000): Promise<string> {
  const enc = (a: string[]) => `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let buf = '';
    let authPending = password !== undefined;
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    const done = (e: Error | undefined, v?: string) => {
      clearTimeout(t);
      s.destroy();
      if (e) reject(e);
      else resolve(v!);
    };
    s.on('connect', () => s.write((password !== undefined ? enc(['AUTH', password]) : '') + enc(args)));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.startsWith('-')) return done(new Error(buf.split('\r\n')[0]!.slice(1)));
      if (authPending) {
        if (!buf.startsWith('+OK\r\n')) return;
        buf = buf.slice(5);
        authPending = false;
      }
      if (buf.startsWith('-')) return done(new Error(buf.split('\r\n')[0]!.slice(1)));
      const m = /^\$(\d+)\r\n/.exec(buf);
      if (m && Buffer.byteLength(buf) >= m[0].length + Number(m[1])) {
        const body = Buffer.from(buf).subarray(m[0].length, m[0].length + Number(m[1]));
        done(undefined, body.toString());
      }
    });
    s.on('error', (e) => done(e));
  });
}

const program = new Command('decree')
  .description('Decree: a multi-Paxos replicated KV service (a modern RSL)')
  .exitOverride()
  // a usage error is one line: "decree: unknown option '--x' (see decree --help)"
  .configureOutput({
    writeErr: (s) =>
      process.stderr.write(
        s.startsWith('error:')
          ? `decree: ${s
              .slice(7)
              .trim()
              .replace(/\s*\n\s*/g, ' ')} (see decree --help)\n`
          : s,
      ),
  });

const ROLE_NAMES = ['acceptor', 'proposer', 'learner', 'elector', 'snapshotter', 'config-manager', 'client'];

interface StartOptions {
  config: string;
  id: string;
  logLevel: string;
  role?: string;
  inc?: string;
  promote: boolean;
  trace?: string;
  traceRatio?: string;
  otlpEndpoint?: string;
  otlpHeader?: string[];
  inspect: boolean;
}

/** `decree start --role <role>`: one role of replica --id as this process (roles as processes, over NATS). */
async function startRole(o: StartOptions & { role: string }): Promise<void> {
  if (!ROLE_NAMES.includes(o.role)) throw new UsageError(`--role: unknown role "${o.role}" (${ROLE_NAMES.join(', ')})`);
  if (o.trace !== undefined || o.inspect)
    throw new UsageError('--trace and --inspect run with a whole replica, not with --role');
  const cfg = loadConfig(o.config);
  if (!cfg.replicas.some((r) => r.id === o.id))
    throw new UsageError(
      `--id: replica "${o.id}" is not in ${o.config} (replicas: ${cfg.replicas.map((r) => r.id).join(', ')})`,
    );
  const { ROLES_WITH_INC, rolesConfigProblem, startRoleProcess } = await import('./roles.ts');
  const problem = rolesConfigProblem(cfg, o.config);
  if (problem) throw new UsageError(`--role ${o.role}: ${problem}`);
  const role = o.role as (typeof ROLES_WITH_INC)[number];
  const log = pino({ level: o.logLevel, base: { replica: o.id, role } });
  let inc: number;
  if (o.inc !== undefined) {
    inc = Number(o.inc);
    if (!/^\d{1,15}$/.test(o.inc) || inc === 0)
      throw new UsageError(`--inc must be a positive integer, got "${o.inc}"`);
  } else if (ROLES_WITH_INC.includes(role)) {
    // the same in every role process of this replica on this host (incarnation.ts)
    const { deriveIncarnation } = await import('./incarnation.ts');
    const d = deriveIncarnation(join(cfg.dataDir, o.id));
    inc = d.inc;
    log.info(
      { inc, file: join(cfg.dataDir, o.id, 'incarnation.json') },
      d.fresh ? 'new incarnation' : 'joined incarnation',
    );
  } else inc = 1; // the acceptor, elector and snapshotter carry none
  const running = await startRoleProcess(cfg, o.id, role, { log, inc, promote: o.promote });
  const client = running.clientAddress;
  log.info(
    { inc, ...(client ? { client: `${client.host}:${client.port}` } : {}), transport: cfg.transport },
    'role started',
  );
  let stopping = false;
  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'stopping');
    const hard = setTimeout(() => {
      log.error('graceful stop took more than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    hard.unref();
    await running.stop();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

program
  .command('start')
  .description('run one replica of the cluster described by the config file (or, with --role, one role of it)')
  .requiredOption('--config <file>', 'the cluster config (JSON)')
  .requiredOption('--id <replica>', 'which replica of the config this process is')
  .option('--role <role>', `run only this role of the replica, over NATS: ${ROLE_NAMES.join(' | ')}`)
  .option(
    '--inc <n>',
    'with --role: the incarnation shared by the role processes of the replica ' +
      '(default: <dataDir>/<id>/incarnation.json)',
  )
  .option('--promote', 'with --role elector: campaign at once', false)
  .option('--log-level <level>', 'trace | debug | info | warn | error', 'info')
  .option(
    '--trace <exporter>',
    'trace command batches across replicas (OpenTelemetry): console | otlp (overrides the config\'s "tracing")',
  )
  .option('--trace-ratio <ratio>', "fraction of batches traced, 0..1 (default: the config's tracing.ratio, else 1)")
  .option(
    '--otlp-endpoint <url>',
    'with --trace otlp: OTLP/HTTP traces URL (default: tracing.endpoint, $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, http://localhost:4318/v1/traces)',
  )
  .option(
    '--otlp-header <name=value>',
    'with --trace otlp: an HTTP header of every export (repeatable)',
    (v: string, acc: string[] = []) => [...acc, v],
  )
  .option('--inspect', 'connect every role machine to @statelyai/inspect (offline: log inspection events)', false)
  .action(async (o: StartOptions) => {
    if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(o.logLevel))
      throw new UsageError(`--log-level: unknown level "${o.logLevel}" (trace, debug, info, warn, error)`);
    if (o.role !== undefined) return startRole({ ...o, role: o.role });
    if (o.inc !== undefined || o.promote) throw new UsageError('--inc and --promote go with --role');
    const cfg = loadConfig(o.config);
    if (!cfg.replicas.some((r) => r.id === o.id))
      throw new UsageError(
        `--id: replica "${o.id}" is not in ${o.config} (replicas: ${cfg.replicas.map((r) => r.id).join(', ')})`,
      );
    const log = pino({ level: o.logLevel, base: { replica: o.id } });
    const resolved = resolveTracing(cfg.tracing, o);
    if ('error' in resolved) throw new UsageError(resolved.error);
    const tracing = resolved.tracing;
    // the OTel SDK loads only when asked for
    const sdk = tracing || o.inspect ? await import('@decree/telemetry/sdk') : undefined;
    let exportFailures = 0;
    let lastExportWarning = 0;
    const tracer = tracing
      ? sdk!.registerTracing({
          ...tracing,
          // the bus samples each batch (startNode's tracing.ratio); a ratio in the SDK's sampler too
          // would multiply the two
          ratio: 1,
          service: { instanceId: o.id },
          // a collector that is down must not flood the log: the first failure, then at most one line per 30 s
          onExportError: (e) => {
            exportFailures++;
            if (Date.now() - lastExportWarning < 30_000) return;
            lastExportWarning = Date.now();
            log.warn({ err: e.message, failures: exportFailures }, 'trace export failed; spans dropped');
          },
        })
      : undefined;
    if (tracing)
      log.info(
        {
          exporter: tracing.exporter,
          ratio: tracing.ratio,
          ...(tracing.exporter === 'otlp' ? { endpoint: tracing.endpoint ?? '(OTEL_EXPORTER_OTLP_* or default)' } : {}),
        },
        'tracing on',
      );
    const inspector = o.inspect ? await sdk!.makeInspector((msg, obj) => log.info(obj, msg)) : undefined;
    const node = await startNode(cfg, o.id, {
      log,
      ...(tracing ? { tracing: { ratio: tracing.ratio } } : {}),
      ...(inspector ? { inspect: inspector.inspect } : {}),
    });
    log.info(
      {
        client: `${node.clientAddress.host}:${node.clientAddress.port}`,
        ...(node.statusAddress ? { status: `${node.statusAddress.host}:${node.statusAddress.port}` } : {}),
        rings: cfg.rings,
        storage: cfg.storage,
        transport: cfg.transport,
      },
      'replica started',
    );
    let leaderWas: string | undefined;
    const watch = setInterval(() => {
      const r = node.replicas.get(cfg.rings[0]!)!;
      const l = r.currentLeader();
      if (l !== leaderWas) {
        leaderWas = l;
        log.info({ leader: l, executed: r.executedSlot() }, l === o.id ? 'this replica leads' : 'leader changed');
      }
    }, 250);
    let stopping = false;
    const shutdown = async (sig: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(watch);
      log.info({ signal: sig }, 'stopping: no new clients, finishing durable writes');
      const hard = setTimeout(() => {
        log.error('graceful stop took more than 10 s; exiting');
        process.exit(1);
      }, 10_000);
      hard.unref();
      await node.stop();
      inspector?.stop();
      await tracer?.shutdown().catch((e: Error) => log.warn({ err: e.message }, 'trace export at shutdown failed'));
      log.info('stopped');
      process.exit(0);
    };
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
  });

program
  .command('status')
  .description("print each replica's role, leader and slots (asks their client ports)")
  .requiredOption('--config <file>', 'the cluster config (JSON)')
  .option('--id <replica>', 'only this replica')
  .option('--json', 'print JSON', false)
  .action(async (o: { config: string; id?: string; json: boolean }) => {
    const cfg = loadConfig(o.config);
    const targets = cfg.replicas.filter((r) => !o.id || r.id === o.id);
    if (targets.length === 0) throw new UsageError(`--id: replica "${o.id}" is not in ${o.config}`);
    const rows = await Promise.all(
      targets.map(async (r) => {
        try {
          const s = JSON.parse(await respQuery(r.host, r.clientPort, ['DECREE', 'STATUS'], cfg.kv.password));
          return {
            id: r.id,
            address: `${r.host}:${r.clientPort}`,
            up: true,
            role: s.role,
            leader: s.leader,
            executed: s.executedUpTo,
            chosen: s.chosenUpTo,
            ballot: s.ballot ? `${s.ballot.round}.${s.ballot.leader}` : undefined,
          };
        } catch (e) {
          return { id: r.id, address: `${r.host}:${r.clientPort}`, up: false, error: (e as Error).message };
        }
      }),
    );
    if (o.json) console.log(JSON.stringify(rows, null, 2));
    else console.table(rows);
    if (rows.every((r) => !r.up)) process.exitCode = 1;
  });

// ------------------------------------------------------------------ configuration changes
interface ConfigView {
  epoch: number;
  members: string[];
  startSlot: number;
  leader?: string;
}

/** The configuration as the first replica that answers sees it (and who leads). */
async function currentConfig(cfg: ReturnType<typeof loadConfig>): Promise<{ view: ConfigView; via: string }> {
  const errors: string[] = [];
  for (const r of cfg.replicas) {
    try {
      return {
        view: JSON.parse(await respQuery(r.host, r.clientPort, ['DECREE', 'CONFIG'], cfg.kv.password)) as ConfigView,
        via: r.id,
      };
    } catch (e) {
      errors.push(`${r.id}: ${(e as Error).message}`);
    }
  }
  throw new UsageError(`no replica answered (${errors.join('; ')})`);
}

/** Asks the leader (following NOT_LEADER redirects) to replace the member set. */
async function changeMembers(
  cfg: ReturnType<typeof loadConfig>,
  members: string[],
  leader: string | undefined,
  timeoutMs: number,
): Promise<{ epoch: number; members: string[]; slot: number }> {
  const known = new Set(cfg.replicas.map((r) => r.id));
  const unknown = members.filter((m) => !known.has(m));
  if (unknown.length)
    throw new UsageError(
      `not in the cluster config: ${unknown.join(', ')} (list their addresses under "replicas" first)`,
    );
  let target = leader ?? cfg.replicas[0]!.id;
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = cfg.replicas.find((x) => x.id === target)!;
    try {
      return JSON.parse(
        await respQuery(r.host, r.clientPort, ['DECREE', 'CONFIG', 'SET', ...members], cfg.kv.password, timeoutMs),
      );
    } catch (e) {
      const msg = (e as Error).message;
      const hint = /NOT_LEADER .*leader=(\S+)/.exec(msg)?.[1];
      if (hint && hint !== target && known.has(hint)) {
        target = hint;
        continue;
      }
      if (/NOT_LEADER/.test(msg)) {
        await new Promise((res) => setTimeout(res, 500)); // an election is under way
        target = (await currentConfig(cfg)).view.leader ?? target;
        continue;
      }
      throw new UsageError(`the change was refused: ${msg.replace(/^ERR /, '')}`);
    }
  }
  throw new UsageError('no leader accepted the change (elections kept moving it); try again');
}

const configCmd = program
  .command('config')
  .description('show or change the member set of a running cluster (through the log)');
const withConfig = (c: Command) =>
  c
    .requiredOption('--config <file>', 'the cluster config (JSON): every replica, members or not, with its addresses')
    .option(
      '--timeout <ms>',
      'how long to wait for the change',
      (v: string) => {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n <= 0)
          throw new UsageError(`--timeout must be a positive integer (ms), got "${v}"`);
        return n;
      },
      120_000,
    );

program
  .command('bootstrap')
  .description('give replicas started with no configuration ("members": []) their first one (RSL Bootstrap)')
  .requiredOption('--config <file>', 'the cluster config (JSON)')
  .option('--members <ids>', 'comma-separated member ids (default: every replica listed)')
  .action(async (o: { config: string; members?: string }) => {
    const cfg = loadConfig(o.config);
    const members = o.members
      ? o.members
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : cfg.replicas.map((r) => r.id);
    const known = new Set(cfg.replicas.map((r) => r.id));
    const unknown = members.filter((m) => !known.has(m));
    if (unknown.length) throw new UsageError(`--members: not in the cluster config: ${unknown.join(', ')}`);
    const errors: string[] = [];
    for (const id of members) {
      const r = cfg.replicas.find((x) => x.id === id)!;
      try {
        const res = JSON.parse(
          await respQuery(r.host, r.clientPort, ['DECREE', 'BOOTSTRAP', ...members], cfg.kv.password, 60_000),
        );
        console.log(
          `${res.result === 'ok' ? 'bootstrapped' : 'already bootstrapped'}: ` +
            `configuration ${res.epoch}: ${res.members.join(',')} (leader ${res.leader})`,
        );
        return;
      } catch (e) {
        const msg = (e as Error).message;
        if (/^(INVALID|ALREADY|FAILED) /.test(msg.replace(/^ERR /, '')))
          throw new UsageError(`bootstrap refused: ${msg.replace(/^ERR /, '')}`);
        errors.push(`${id}: ${msg}`);
      }
    }
    throw new UsageError(`no member answered (${errors.join('; ')})`);
  });

withConfig(configCmd.command('get').description('print the members, the configuration number and the leader'))
  .option('--json', 'print JSON', false)
  .action(async (o: { config: string; json: boolean }) => {
    const cfg = loadConfig(o.config);
    const { view, via } = await currentConfig(cfg);
    if (o.json) console.log(JSON.stringify({ ...view, via }));
    else
      console.log(
        `configuration ${view.epoch}: ${view.members.join(',')} (leader ${view.leader ?? 'unknown'}; asked ${via})`,
      );
  });

/** Runs one change: computes the new set from the current one, asks the leader, prints the outcome. */
async function runChange(o: { config: string; timeout: number }, next: (current: string[]) => string[]): Promise<void> {
  const cfg = loadConfig(o.config);
  const { view } = await currentConfig(cfg);
  const members = next(view.members);
  const r = await changeMembers(cfg, members, view.leader, o.timeout);
  console.log(`configuration ${r.epoch}: ${r.members.join(',')} (chosen at slot ${r.slot})`);
}

withConfig(
  configCmd
    .command('add')
    .argument('<id...>', 'replicas to add')
    .description('add replicas (they catch up, then vote)'),
).action(async (ids: string[], o: { config: string; timeout: number }) =>
  runChange(o, (cur) => {
    const dup = ids.filter((i) => cur.includes(i));
    if (dup.length) throw new UsageError(`already members: ${dup.join(', ')}`);
    return [...cur, ...ids];
  }),
);
withConfig(
  configCmd
    .command('remove')
    .argument('<id...>', 'replicas to remove')
    .description('remove replicas (a removed leader steps down)'),
).action(async (ids: string[], o: { config: string; timeout: number }) =>
  runChange(o, (cur) => {
    const missing = ids.filter((i) => !cur.includes(i));
    if (missing.length) throw new UsageError(`not members: ${missing.join(', ')}`);
    return cur.filter((m) => !ids.includes(m));
  }),
);
withConfig(
  configCmd
    .command('replace')
    .argument('<old>', 'the member to replace')
    .argument('<new>', 'the replica taking its place')
    .description('replace one member by another'),
).action(async (old: string, nu: string, o: { config: string; timeout: number }) =>
  runChange(o, (cur) => {
    if (!cur.includes(old)) throw new UsageError(`not a member: ${old}`);
    if (cur.includes(nu)) throw new UsageError(`already a member: ${nu}`);
    return cur.map((m) => (m === old ? nu : m));
  }),
);
withConfig(
  configCmd.command('set').argument('<id...>', 'the whole new member set').description('set the whole member set'),
).action(async (ids: string[], o: { config: string; timeout: number }) => runChange(o, () => ids));

program
  .command('replay')
  .description("offline replay of a replica's snapshot and log into the KV state machine (read-only; RSL Replay)")
  .requiredOption('--dir <dir>', "a replica's data directory for one ring: <dataDir>/<id>/<ring>")
  .option('--to-slot <n>', 'replay up to this slot (default: as far as the log proves chosen)', (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--to-slot must be a non-negative integer, got "${v}"`);
    return n;
  })
  .option('--snapshot-out <dir>', 'write a snapshot of the state at that slot into this directory')
  .option('--json', 'print JSON', false)
  .action(async (o: { dir: string; toSlot?: number; snapshotOut?: string; json: boolean }) => {
    const { replay, ReplayError } = await import('./replay.ts');
    try {
      const r = await replay({
        dir: o.dir,
        ...(o.toSlot !== undefined ? { toSlot: o.toSlot } : {}),
        ...(o.snapshotOut ? { snapshotOut: o.snapshotOut } : {}),
      });
      if (o.json) console.log(JSON.stringify(r));
      else {
        console.log(
          `replayed slots ${r.fromSnapshot + 1}..${r.toSlot} (${r.commands} commands) from ` +
            (r.fromSnapshot ? `the snapshot at slot ${r.fromSnapshot}` : 'the empty state'),
        );
        console.log(
          `state at slot ${r.toSlot}: ${r.keys} keys, digest ${r.digest}; ` +
            `configuration ${r.config.epoch}: ${r.config.members.join(',')}`,
        );
        console.log(`this directory proves the chosen log up to slot ${r.provenUpTo}`);
        if (r.snapshotWritten) console.log(`snapshot written: ${r.snapshotWritten}`);
      }
    } catch (e) {
      if (e instanceof ReplayError) throw new UsageError(e.message);
      throw e;
    }
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  fail(e);
}
