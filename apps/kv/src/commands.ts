/**
 * The connection-housekeeping commands of the RESP server that do not touch the replicated state:
 * HELLO's arguments, CLIENT INFO/LIST lines, INFO text, the command list. Replies follow Redis 7.
 */
import type { RespProtocol } from './resp.ts';

/** The Redis version whose replies the server follows (INFO's redis_version, for tools that gate on it). */
export const REDIS_COMPAT_VERSION = '7.2.0';
export const DECREE_VERSION = '0.1.0';

/** Every command the server answers (COMMAND COUNT / COMMAND LIST). */
export const COMMAND_NAMES: readonly string[] = [
  'get',
  'mget',
  'exists',
  'dbsize',
  'scan',
  'type',
  'ttl',
  'pttl',
  'set',
  'mset',
  'del',
  'incr',
  'decr',
  'incrby',
  'decrby',
  'cas',
  'casnx',
  'decree',
  'decree.session',
  'decree.slot',
  'decree.fastread',
  'readonly',
  'readwrite',
  'auth',
  'hello',
  'ping',
  'echo',
  'quit',
  'select',
  'info',
  'client',
  'config',
  'command',
];

export const CLIENT_HELP: readonly string[] = [
  'CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'ID',
  '    Return the ID of the current connection.',
  'INFO',
  '    Return information about the current client connection.',
  'LIST',
  '    Return information about client connections.',
  'GETNAME',
  '    Return the name of the current connection.',
  'SETNAME <connection-name>',
  '    Assign the name <connection-name> to the current connection.',
  'SETINFO <option> <value>',
  '    Set client meta attr (LIB-NAME or LIB-VER).',
  'NO-EVICT (ON|OFF)',
  '    Accepted; no effect (this server evicts nothing).',
  'NO-TOUCH (ON|OFF)',
  '    Accepted; no effect.',
  'HELP',
  '    Print this help.',
];

/**
 * Redis's rule for client names and library attributes: printable ASCII without spaces ('!' to '~');
 * empty is allowed (it clears the name).
 */
export function validName(b: Uint8Array): boolean {
  for (const c of b) if (c < 0x21 || c > 0x7e) return false;
  return true;
}

export interface HelloRequest {
  /** the protocol asked for (absent: keep the connection's) */
  proto?: RespProtocol;
  auth?: { user: Buffer; pass: Buffer };
  setname?: Buffer;
}

/** `HELLO [protover [AUTH username password] [SETNAME clientname]]` parsed as Redis 7 does, or its error line. */
export function helloArgs(args: readonly Buffer[]): HelloRequest | string {
  const req: HelloRequest = {};
  let next = 1;
  if (args.length >= 2) {
    const v = args[next++]!.toString('latin1');
    if (!/^-?\d{1,18}$/.test(v)) return 'ERR Protocol version is not an integer or out of range';
    const ver = Number(v);
    if (ver !== 2 && ver !== 3) return 'NOPROTO sorry, this protocol version is not supported.';
    req.proto = ver;
  }
  for (let j = next; j < args.length; j++) {
    const more = args.length - 1 - j;
    const opt = args[j]!.toString('latin1');
    const up = opt.toUpperCase();
    if (up === 'AUTH' && more >= 2) {
      req.auth = { user: args[j + 1]!, pass: args[j + 2]! };
      j += 2;
    } else if (up === 'SETNAME' && more >= 1) {
      if (!validName(args[j + 1]!)) return 'ERR Client names cannot contain spaces, newlines or special characters.';
      req.setname = args[j + 1]!;
      j++;
    } else return `ERR Syntax error in HELLO option '${opt.slice(0, 64)}'`;
  }
  return req;
}

/** What CLIENT INFO / CLIENT LIST say about one connection. */
export interface ClientFacts {
  id: number;
  addr: string;
  laddr: string;
  name: string;
  createdMs: number;
  lastMs: number;
  readonly: boolean;
  lastCmd: string;
  proto: RespProtocol;
  libName: string;
  libVer: string;
}

/**
 * One line of CLIENT LIST / CLIENT INFO: Redis 7.2's fields in its order. The buffer and memory fields are
 * not tracked and read 0, but they are there: clients parse them (redis-py's CLIENT INFO needs `oll` etc.).
 */
export function clientLine(f: ClientFacts, nowMs: number): string {
  const age = Math.floor((nowMs - f.createdMs) / 1000);
  const idle = Math.floor((nowMs - f.lastMs) / 1000);
  return (
    `id=${f.id} addr=${f.addr} laddr=${f.laddr} fd=-1 name=${f.name} age=${age} idle=${idle} ` +
    `flags=${f.readonly ? 'r' : 'N'} db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 ` +
    'qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r ' +
    `cmd=${f.lastCmd.toLowerCase().slice(0, 32)} user=default ` +
    `redir=-1 resp=${f.proto} lib-name=${f.libName} lib-ver=${f.libVer}\n`
  );
}

export interface InfoFacts {
  port: number;
  uptimeS: number;
  clients: number;
  stats: { connections: number; commands: number; protocolErrors: number; rejectedConnections: number };
  leader: boolean;
  /** keys in this replica's state (a local read), undefined when the backend cannot tell */
  keys: number | undefined;
  status: Record<string, unknown>;
}

const SECTIONS = ['server', 'clients', 'persistence', 'stats', 'replication', 'keyspace', 'decree'];

/**
 * INFO [section ...]: Redis-style `# Section` blocks of `field:value` lines. `all`, `everything` and
 * `default` (or no argument) give every section; unknown names give nothing, as in Redis.
 */
export function infoText(wanted: readonly string[], f: InfoFacts): string {
  const w = wanted.map((s) => s.toLowerCase());
  const all = w.length === 0 || w.some((s) => s === 'all' || s === 'everything' || s === 'default');
  const pick = SECTIONS.filter((s) => all || w.includes(s));
  const blocks: string[] = [];
  const block = (title: string, fields: [string, unknown][]) =>
    blocks.push(
      [`# ${title}`, ...fields.map(([k, v]) => `${k}:${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)].join(
        '\r\n',
      ),
    );
  for (const s of pick) {
    if (s === 'server')
      block('Server', [
        ['redis_version', REDIS_COMPAT_VERSION],
        ['decree_version', DECREE_VERSION],
        ['redis_mode', 'standalone'],
        ['process_id', process.pid],
        ['tcp_port', f.port],
        ['uptime_in_seconds', f.uptimeS],
      ]);
    else if (s === 'clients') block('Clients', [['connected_clients', f.clients]]);
    else if (s === 'persistence') block('Persistence', [['loading', 0]]);
    else if (s === 'stats')
      block('Stats', [
        ['total_connections_received', f.stats.connections],
        ['total_commands_processed', f.stats.commands],
        ['rejected_connections', f.stats.rejectedConnections],
        ['protocol_errors', f.stats.protocolErrors],
      ]);
    else if (s === 'replication') block('Replication', [['role', f.leader ? 'master' : 'slave']]);
    else if (s === 'keyspace') block('Keyspace', f.keys ? [['db0', `keys=${f.keys},expires=0,avg_ttl=0`]] : []);
    else block('Decree', Object.entries(f.status));
  }
  return blocks.length === 0 ? '' : `${blocks.join('\r\n\r\n')}\r\n`;
}
