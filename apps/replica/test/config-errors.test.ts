/**
 * Bad config files and bad flags: `decree start` prints exactly one line per problem on stderr,
 * naming the field or flag, exits non-zero, and prints no stack trace. The many config cases run
 * against parseConfig directly; ~10 representative ones run the real CLI (each is a tsx start).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it, type ExpectStatic } from 'vitest';
import { parseConfig, snapshotPolicy } from '../src/config.ts';
import { CLI, NODE_ARGS, ROOT, exitOf, freePorts, issuesOf, killAll, tempDir, track } from './helpers.ts';

const tmp = tempDir('cfg');
afterAll(async () => {
  await killAll();
  tmp.remove();
});

const good = (over: Record<string, unknown> = {}) => ({
  replicas: [
    { id: 'r1', port: 7101, clientPort: 6381 },
    { id: 'r2', port: 7102, clientPort: 6382 },
    { id: 'r3', port: 7103, clientPort: 6383 },
  ],
  ...over,
});

describe('parseConfig', () => {
  it('accepts a minimal config and fills in every default', () => {
    const c = parseConfig(good());
    expect(c).toMatchObject({
      cluster: 'decree',
      dataDir: './data',
      storage: 'wal',
      transport: 'tcp',
      rings: ['default'],
      election: { minMs: 500, maxMs: 1000, heartbeatMs: 100 },
      batching: { maxInflightSlots: 16, maxBatchCmds: 4096 },
      kv: { maxValueBytes: 1 << 20 },
    });
    expect(c.replicas[0]!.host).toBe('127.0.0.1');
    expect(c.nats).toBeUndefined();
    expect(c.secret).toBeUndefined();
  });

  it('derives the snapshot policy; with pmem, from the log size', () => {
    const MiB = 1 << 20;
    expect(snapshotPolicy(parseConfig(good()))).toEqual({
      everySlots: 10_000,
      everyBytes: 64 * MiB,
      keep: 2,
      truncateMargin: 1_000,
      truncateMarginBytes: 8 * MiB,
    });
    const p = parseConfig(good({ storage: 'pmem', pmemSizeMiB: 128 }));
    expect(p.pmemSizeMiB).toBe(128);
    expect(snapshotPolicy(p)).toMatchObject({ everyBytes: 16 * MiB, truncateMarginBytes: 8 * MiB });
    expect(parseConfig(good({ storage: 'pmem' })).pmemSizeMiB).toBe(64);
  });

  it('accepts an rdma section', () => {
    const rdma = { device: 'mlx5_0', port: 1, gidIndex: 3, capacity: 1 << 20 };
    expect(parseConfig(good({ transport: 'rdma', rdma })).rdma).toEqual(rdma);
    expect(parseConfig(good({ transport: 'rdma' })).rdma).toBeUndefined(); // every field has a default
  });

  const cases: [string, unknown, RegExp[]][] = [
    [
      'a replica without port',
      good({ replicas: [{ id: 'r1', clientPort: 1 }] }),
      [/^c\.json: replicas\[0\]\.port: missing/],
    ],
    [
      'a port out of range',
      good({ replicas: [{ id: 'r1', port: 70000, clientPort: 1 }] }),
      [/^c\.json: replicas\[0\]\.port: .*65535/],
    ],
    [
      'a negative client port',
      good({ replicas: [{ id: 'r1', port: 1, clientPort: -1 }] }),
      [/^c\.json: replicas\[0\]\.clientPort: /],
    ],
    [
      'duplicate ids',
      good({
        replicas: [
          { id: 'r1', port: 1, clientPort: 2 },
          { id: 'r1', port: 3, clientPort: 4 },
        ],
      }),
      [/^c\.json: replicas\[1\]\.id: duplicate replica id "r1"/],
    ],
    [
      'two replicas on one address',
      good({
        replicas: [
          { id: 'r1', port: 1, clientPort: 2 },
          { id: 'r2', port: 1, clientPort: 4 },
        ],
      }),
      [/^c\.json: replicas\[1\]\.port: 127\.0\.0\.1:1 is already used by replicas\[0\]\.port/],
    ],
    ['an unknown top-level field', good({ replicaz: [] }), [/^c\.json: replicaz: unknown field$/]],
    [
      'an unknown field in a replica',
      good({ replicas: [{ id: 'r1', port: 1, clientPort: 2, cp: 3 }] }),
      [/^c\.json: replicas\[0\]\.cp: unknown field$/],
    ],
    [
      'transport nats without a nats section',
      good({ transport: 'nats' }),
      [/^c\.json: nats: required when transport is "nats"/],
    ],
    ['an unknown transport', good({ transport: 'udp' }), [/^c\.json: transport: /]],
    ['an unknown storage', good({ storage: 'disk' }), [/^c\.json: storage: /]],
    ['no replicas', { cluster: 'x' }, [/^c\.json: replicas: missing/]],
    ['an empty replica list', good({ replicas: [] }), [/^c\.json: replicas: /]],
    [
      'a bad replica id',
      good({ replicas: [{ id: 'r 1', port: 1, clientPort: 2 }] }),
      [/^c\.json: replicas\[0\]\.id: must be 1-64 letters/],
    ],
    [
      'election.maxMs below minMs',
      good({ election: { minMs: 500, maxMs: 400, heartbeatMs: 50 } }),
      [/^c\.json: election\.maxMs: must be >= election\.minMs/],
    ],
    [
      'a heartbeat too slow for the timeout',
      good({ election: { minMs: 300, maxMs: 600, heartbeatMs: 200 } }),
      [/^c\.json: election\.heartbeatMs: /],
    ],
    ['a short secret', good({ secret: 'short' }), [/^c\.json: secret: /]],
    ['duplicate rings', good({ rings: ['a', 'a'] }), [/^c\.json: rings: duplicate ring id/]],
    ['a pmem log smaller than 8 MiB', good({ storage: 'pmem', pmemSizeMiB: 4 }), [/^c\.json: pmemSizeMiB: .*8/]],
    [
      'a pmem size that is not a whole number',
      good({ storage: 'pmem', pmemSizeMiB: 12.5 }),
      [/^c\.json: pmemSizeMiB: /],
    ],
    [
      'snapshots too far apart for the pmem log',
      good({ storage: 'pmem', pmemSizeMiB: 64, snapshots: { everyMiB: 32 } }),
      [
        /^c\.json: snapshots: with storage "pmem" the log must hold keep × everyMiB \+ marginMiB = 68 MiB in three quarters of pmemSizeMiB \(64\)/,
      ],
    ],
    ['an unknown snapshots field', good({ snapshots: { every: 5 } }), [/^c\.json: snapshots\.every: unknown field$/]],
    ['snapshots.keep of 0', good({ snapshots: { keep: 0 } }), [/^c\.json: snapshots\.keep: /]],
    [
      'bad rdma settings',
      good({ transport: 'rdma', rdma: { device: '', port: 0, gidIndex: 256, capacity: 5000, dev: 'x' } }),
      [
        /^c\.json: rdma\.device: /,
        /^c\.json: rdma\.port: .*>=1/,
        /^c\.json: rdma\.gidIndex: .*<=255/,
        /^c\.json: rdma\.capacity: must be a power of two/,
        /^c\.json: rdma\.dev: unknown field$/,
      ],
    ],
    ['not an object', [1, 2], [/^c\.json: \(top level\): /]],
    [
      'three problems at once',
      good({
        replicas: [
          { id: 'r1', clientPort: 1 },
          { id: 'r2', port: 99999, clientPort: 2 },
        ],
        foo: 1,
      }),
      [/replicas\[0\]\.port: missing/, /replicas\[1\]\.port: .*65535/, /foo: unknown field/],
    ],
  ];
  it.each(cases)('%s: one line per problem, naming the field', (_name, raw, want) => {
    const issues = issuesOf(raw);
    expect(issues).toHaveLength(want.length);
    want.forEach((re, i) => expect(issues[i]).toMatch(re));
    for (const l of issues) expect(l).not.toContain('\n');
  });
});

// ------------------------------------------------------------------ through the real CLI
interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
async function decree(args: string[]): Promise<Run> {
  const c = spawn(process.execPath, [...NODE_ARGS, CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  track(c);
  let stdout = '';
  let stderr = '';
  c.stdout!.on('data', (d) => (stdout += d));
  c.stderr!.on('data', (d) => (stderr += d));
  // a bad config that was NOT refused would start a replica that runs forever: stop it and fail
  const guard = setTimeout(() => c.kill('SIGKILL'), 30_000);
  const { code } = await exitOf(c, 40_000);
  clearTimeout(guard);
  return { code, stdout, stderr };
}

function file(name: string, body: unknown): string {
  const p = path.join(tmp.dir, name);
  writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body));
  return p;
}

/** Exactly the expected lines, each "decree: ..." matching its pattern; non-zero exit; no stack; no log output. */
function expectProblems(expect: ExpectStatic, r: Run, want: RegExp[]): void {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.code).not.toBeNull();
  expect(lines, r.stderr).toHaveLength(want.length);
  want.forEach((re, i) => {
    expect(lines[i]).toMatch(/^decree: /);
    expect(lines[i]).toMatch(re);
  });
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout).toBe('');
}

describe('decree start with bad config files and flags (real CLI)', async () => {
  const [p1, p2, p3, p4] = await freePorts(4);
  const valid = () =>
    file('valid.json', {
      dataDir: path.join(tmp.dir, 'data'),
      replicas: [
        { id: 'r1', port: p1, clientPort: p2 },
        { id: 'r2', port: p3, clientPort: p4 },
      ],
    });

  const runs: [string, () => string[], RegExp[]][] = [
    [
      'a missing config file',
      () => ['start', '--config', path.join(tmp.dir, 'nope.json'), '--id', 'r1'],
      [/cannot read config file .*nope\.json: ENOENT/],
    ],
    [
      'invalid JSON',
      () => ['start', '--config', file('bad.json', '{"replicas": [}'), '--id', 'r1'],
      [/bad\.json: not valid JSON/],
    ],
    [
      'a replica without port, a port out of range and an unknown field',
      () => [
        'start',
        '--config',
        file('three.json', {
          replicas: [
            { id: 'r1', clientPort: 1 },
            { id: 'r2', port: 99999, clientPort: 2 },
          ],
          foo: 1,
        }),
        '--id',
        'r1',
      ],
      [
        /three\.json: replicas\[0\]\.port: missing/,
        /three\.json: replicas\[1\]\.port: .*65535/,
        /three\.json: foo: unknown field/,
      ],
    ],
    [
      'duplicate ids',
      () => [
        'start',
        '--config',
        file('dup.json', {
          replicas: [
            { id: 'r1', port: p1, clientPort: p2 },
            { id: 'r1', port: p3, clientPort: p4 },
          ],
        }),
        '--id',
        'r1',
      ],
      [/dup\.json: replicas\[1\]\.id: duplicate replica id "r1"/],
    ],
    [
      'transport nats without a nats section',
      () => [
        'start',
        '--config',
        file('nats.json', { transport: 'nats', replicas: [{ id: 'r1', port: p1, clientPort: p2 }] }),
        '--id',
        'r1',
      ],
      [/nats\.json: nats: required when transport is "nats"/],
    ],
    [
      '--id not in the config',
      () => ['start', '--config', valid(), '--id', 'r9'],
      [/--id: replica "r9" is not in .*valid\.json \(replicas: r1, r2\)/],
    ],
    [
      'an unknown --log-level',
      () => ['start', '--config', valid(), '--id', 'r1', '--log-level', 'loud'],
      [/--log-level: unknown level "loud"/],
    ],
    ['a missing --config', () => ['start', '--id', 'r1'], [/required option '--config <file>' not specified/]],
    [
      'an unknown flag',
      () => ['start', '--config', valid(), '--id', 'r1', '--verbose'],
      [/unknown option '--verbose'/],
    ],
    ['an unknown subcommand', () => ['begin', '--config', valid()], [/unknown command 'begin'/]],
    [
      // device discovery at start (packages/transport-shm tests cover the library call): one line, no stack
      'transport rdma on a machine without an RDMA device',
      () => [
        'start',
        '--config',
        file('rdma.json', {
          transport: 'rdma',
          rdma: { gidIndex: 1 },
          dataDir: path.join(tmp.dir, 'data'),
          replicas: [
            { id: 'r1', port: p1, clientPort: p2 },
            { id: 'r2', port: p3, clientPort: p4 },
          ],
        }),
        '--id',
        'r1',
      ],
      [/^decree: no RDMA device found \(ibv_get_device_list returned 0 devices\)$/],
    ],
    [
      'a data dir that cannot be created',
      () => [
        'start',
        '--config',
        file('datafile.json', { dataDir: file('afile', 'x'), replicas: [{ id: 'r1', port: p1, clientPort: p2 }] }),
        '--id',
        'r1',
      ],
      [/storage I\/O error on .*afile.*ENOTDIR/],
    ],
  ];
  // concurrent: each run is mostly a tsx start; the machine has 2 cores
  it.concurrent.for(runs)('%s', async ([, args, want], { expect }) => {
    expectProblems(expect, await decree(args()), want);
  });
});
