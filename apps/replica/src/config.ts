import { readFileSync } from 'node:fs';
import { z } from 'zod';

const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, _ or -');
const port = z.number().int().min(0).max(65535);

export const ReplicaEntry = z.strictObject({
  id,
  host: z.string().min(1).default('127.0.0.1'),
  /** replica-to-replica port (TCP transport) */
  port,
  /** RESP (Redis protocol) port for clients */
  clientPort: port,
  /** status web page (/, /status.json, /metrics) of this replica; absent: no status server */
  statusPort: port.optional(),
});

export const ClusterConfig = z.strictObject({
  cluster: z.string().min(1).default('decree'),
  /** data directory; each replica uses <dataDir>/<id>/<ring> */
  dataDir: z.string().min(1).default('./data'),
  storage: z.enum(['wal', 'memory', 'pmem']).default('wal'),
  /**
   * storage "pmem": size of the circular log of each replica and ring in MiB, when it is created (an
   * existing log keeps the size it was created with). Snapshots are taken often enough to keep it
   * at most half full (docs/snapshots.md); a full log makes writes wait, it never fails them.
   */
  pmemSizeMiB: z.number().int().min(8).max(1_048_576).default(64),
  /**
   * When snapshots are taken and how much log is kept (docs/snapshots.md "Bounded log"). Defaults:
   * every 10,000 slots or 64 MiB of commands (storage pmem: an eighth of pmemSizeMiB), the newest 2
   * kept, the log kept down to 1,000 slots or 8 MiB (pmem: a sixteenth) below the older of them.
   */
  snapshots: z
    .strictObject({
      everySlots: z.number().int().min(0).optional(),
      everyMiB: z.number().positive().optional(),
      keep: z.number().int().min(1).max(100).optional(),
      marginSlots: z.number().int().min(0).optional(),
      marginMiB: z.number().min(0).optional(),
    })
    .optional(),
  /** storage "wal": `sync` dsync (segments opened O_DSYNC: one round trip per batch, the default) or fdatasync */
  wal: z.strictObject({ sync: z.enum(['dsync', 'fdatasync']).default('dsync') }).optional(),
  transport: z.enum(['tcp', 'nats', 'shm', 'rdma']).default('tcp'),
  /** transport "tcp": `encodeOnce` (default true) packs a message sent to several peers once */
  tcp: z.strictObject({ encodeOnce: z.boolean().default(true) }).optional(),
  /** shared-memory rings between replicas of one host (transport "shm"): where the ring files live, bytes per ring */
  shm: z
    .strictObject({ dir: z.string().min(1).default('/dev/shm'), capacity: z.number().int().min(4096).optional() })
    .optional(),
  /**
   * RDMA rings between hosts (transport "rdma"): which device, device port and GID index, bytes per ring.
   * The queue-pair details are traded over a TCP side channel on each replica's `port`.
   */
  rdma: z
    .strictObject({
      device: z.string().min(1).optional(),
      /** the device's port number (as ibv_devinfo numbers them, default 1); not a TCP port */
      port: z.number().int().min(1).max(255).optional(),
      gidIndex: z.number().int().min(0).max(255).optional(),
      capacity: z
        .number()
        .int()
        .min(4096)
        .max(2 ** 32)
        .refine((n) => Number.isInteger(Math.log2(n)), 'must be a power of two (4096, 8192, …)')
        .optional(),
    })
    .optional(),
  nats: z
    .strictObject({
      servers: z.array(z.string().min(1)).min(1),
      user: z.string().optional(),
      pass: z.string().optional(),
      token: z.string().optional(),
      subjectPrefix: z.string().min(1).optional(),
    })
    .optional(),
  /** independent replica groups hosted by every process (RSL rings); clients pick one with SELECT <index> */
  rings: z.array(id).min(1).default(['default']),
  replicas: z.array(ReplicaEntry).min(1),
  /**
   * The initial configuration (default: every replica listed). Replicas listed but not members start
   * with none and join when a configuration change names them (`decree config add`). Used at a
   * replica's first start only: later changes go through the log. `[]`: every replica starts with
   * none and waits for `decree bootstrap`.
   */
  members: z.array(id).optional(),
  election: z
    .strictObject({
      minMs: z.number().int().positive().default(500),
      maxMs: z.number().int().positive().default(1000),
      heartbeatMs: z.number().int().positive().default(100),
    })
    .default({ minMs: 500, maxMs: 1000, heartbeatMs: 100 }),
  batching: z
    .strictObject({
      maxInflightSlots: z.number().int().min(1).max(1024).default(16),
      maxBatchCmds: z.number().int().min(1).max(1_000_000).default(4096),
    })
    .default({ maxInflightSlots: 16, maxBatchCmds: 4096 }),
  kv: z
    .strictObject({
      password: z.string().min(1).optional(),
      maxValueBytes: z
        .number()
        .int()
        .positive()
        .default(1 << 20),
      /** pipelining depth: unanswered commands per connection before the server stops reading it */
      maxPendingPerConnection: z.number().int().positive().default(16_384),
      maxConnections: z.number().int().positive().default(10_000),
      /** request size: the largest bulk string (argument) a client may send; larger closes the connection */
      maxRequestBytes: z
        .number()
        .int()
        .positive()
        .default(64 << 20),
      /**
       * client sessions (DECREE.SESSION): forgotten once idle for more than sessionTtlSlots slots AND
       * sessionTtlSeconds of log time; a retry of a forgotten session's write gets `ERR session expired`
       */
      sessionTtlSlots: z.number().int().positive().default(100_000),
      sessionTtlSeconds: z.number().int().min(0).default(3600),
      maxSessions: z.number().int().positive().default(1_000_000),
    })
    .default({
      maxValueBytes: 1 << 20,
      maxPendingPerConnection: 16_384,
      maxConnections: 10_000,
      maxRequestBytes: 64 << 20,
      sessionTtlSlots: 100_000,
      sessionTtlSeconds: 3600,
      maxSessions: 1_000_000,
    }),
  /** a secret shared by the replicas: the TCP handshake proves both ends hold it */
  secret: z.string().min(8).optional(),
  /**
   * mutual TLS between replicas (TCP transport): PEM file paths;
   * each replica's certificate must name its id (CN or SAN)
   */
  tls: z.strictObject({ ca: z.string().min(1), cert: z.string().min(1), key: z.string().min(1) }).optional(),
  /**
   * trace command batches across replicas (OpenTelemetry,
   * docs/observability.md); `decree start --trace …` flags override it
   */
  tracing: z
    .strictObject({
      exporter: z.enum(['console', 'otlp']),
      /** fraction of batches traced */
      ratio: z.number().min(0).max(1).default(1),
      /** exporter "otlp": the OTLP/HTTP traces URL; absent: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else http://localhost:4318/v1/traces */
      endpoint: z
        .url({
          protocol: /^https?$/,
          error: 'must be an http:// or https:// URL, e.g. http://collector:4318/v1/traces',
        })
        .optional(),
      /** exporter "otlp": HTTP headers of every export request (e.g. authorization) */
      headers: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
});

export type ClusterConfig = z.infer<typeof ClusterConfig>;

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly issues: string[] = [message],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Validates a parsed config; every bad field gets one line naming it. */
export function parseConfig(raw: unknown, source = 'config'): ClusterConfig {
  const r = ClusterConfig.safeParse(raw);
  if (!r.success) {
    const name = (path: readonly PropertyKey[]) =>
      path.length
        ? path
            .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
            .join('')
            .replace(/^\./, '')
        : '(top level)';
    // one line per problem, naming the field (an unknown field is named itself, one line per key)
    const issues = r.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => `${source}: ${name([...i.path, k])}: unknown field`)
        : [
            `${source}: ${name(i.path)}: ${i.code === 'invalid_type' && /received undefined$/.test(i.message) ? `missing (${i.message.replace(/^Invalid input: (expected \w+).*$/, '$1')})` : i.message}`,
          ],
    );
    throw new ConfigError(issues.join('\n'), issues);
  }
  const c = r.data;
  const issues: string[] = [];
  const ids = new Set<string>();
  const ports = new Map<string, string>();
  c.replicas.forEach((rep, i) => {
    if (ids.has(rep.id)) issues.push(`${source}: replicas[${i}].id: duplicate replica id "${rep.id}"`);
    ids.add(rep.id);
    for (const [what, p] of [
      ['port', rep.port],
      ['clientPort', rep.clientPort],
      ...(rep.statusPort !== undefined ? [['statusPort', rep.statusPort] as const] : []),
    ] as const) {
      const k = `${rep.host}:${p}`;
      if (p !== 0 && ports.has(k))
        issues.push(`${source}: replicas[${i}].${what}: ${k} is already used by ${ports.get(k)}`);
      ports.set(k, `replicas[${i}].${what}`);
    }
  });
  if (new Set(c.rings).size !== c.rings.length) issues.push(`${source}: rings: duplicate ring id`);
  c.members?.forEach((m, i) => {
    if (!ids.has(m)) issues.push(`${source}: members[${i}]: "${m}" is not one of the replicas listed`);
    else if (c.members!.indexOf(m) !== i) issues.push(`${source}: members[${i}]: duplicate member "${m}"`);
  });
  if (c.election.maxMs < c.election.minMs)
    issues.push(`${source}: election.maxMs: must be >= election.minMs (${c.election.minMs})`);
  if (c.election.heartbeatMs * 2 > c.election.minMs)
    issues.push(`${source}: election.heartbeatMs: must be at most half of election.minMs`);
  if (c.transport === 'nats' && !c.nats) issues.push(`${source}: nats: required when transport is "nats"`);
  if (c.storage === 'pmem') {
    const sn = snapshotPolicy(c);
    const needMiB = (sn.keep * sn.everyBytes + sn.truncateMarginBytes) / (1 << 20);
    if (needMiB > c.pmemSizeMiB * 0.75)
      issues.push(
        `${source}: snapshots: with storage "pmem" the log must hold keep × everyMiB + marginMiB = ${needMiB} MiB in ` +
          `three quarters of pmemSizeMiB (${c.pmemSizeMiB}): lower them or raise pmemSizeMiB`,
      );
  }
  if (c.tracing && c.tracing.exporter !== 'otlp')
    for (const k of ['endpoint', 'headers'] as const)
      if (c.tracing[k] !== undefined) issues.push(`${source}: tracing.${k}: only with exporter "otlp"`);
  if (issues.length) throw new ConfigError(issues.join('\n'), issues);
  return c;
}

/** The snapshotter options the config asks for (pmem: intervals scaled to the log's size). */
export function snapshotPolicy(c: ClusterConfig): {
  everySlots: number;
  everyBytes: number;
  keep: number;
  truncateMargin: number;
  truncateMarginBytes: number;
} {
  const s = c.snapshots ?? {};
  const MiB = 1 << 20;
  const pmem = c.storage === 'pmem';
  return {
    everySlots: s.everySlots ?? 10_000,
    everyBytes: Math.round((s.everyMiB ?? (pmem ? Math.min(64, c.pmemSizeMiB / 8) : 64)) * MiB),
    keep: s.keep ?? 2,
    truncateMargin: s.marginSlots ?? 1_000,
    truncateMarginBytes: Math.round((s.marginMiB ?? (pmem ? Math.min(8, c.pmemSizeMiB / 16) : 8)) * MiB),
  };
}

export function loadConfig(path: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}`);
  }
  return parseConfig(raw, path);
}
