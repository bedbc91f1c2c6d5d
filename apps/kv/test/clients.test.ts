/**
 * Client libraries nobody here wrote, on their default options, against KvServers in front of a 3-replica
 * LocalCluster (in-process replicas, real loopback sockets): ioredis, node-redis (npm `redis` v5, RESP3),
 * Debian's redis-py (RESP2), and the bytes redis-py 8 sends on connect (HELLO 3, CLIENT SETINFO) replayed
 * over a raw socket. Also HELLO/SCAN/CLIENT with malformed arguments: an -ERR each, the server keeps serving.
 */
import { execFile, execFileSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { KvMachine } from '@decree/kv-machine';
import { LocalCluster } from '@decree/testkit';
import { KvServer, RespDecoder, RespMap, encodeCommand } from '../src/index.ts';
import { Raw, backendFor, msg } from './helpers.ts';

const IOREDIS_VERSION: string = (await import('ioredis/package.json', { with: { type: 'json' } })).default.version;
const NODE_REDIS_VERSION: string = (await import('redis/package.json', { with: { type: 'json' } })).default.version;

const PY = '/usr/bin/python3';
/** the redis module of Debian's python3 (python3-redis), or undefined when there is none */
function pyRedisVersion(): string | undefined {
  try {
    return execFileSync(PY, ['-c', 'import redis; print(redis.__version__)'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}
const PY_REDIS = pyRedisVersion();

/** A socket that keeps every byte it receives: for checking replies byte for byte. */
class Bytes {
  private buf = Buffer.alloc(0);
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
    });
    sock.on('error', () => {});
  }
  static connect(port: number): Promise<Bytes> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Bytes(s)));
      s.once('error', reject);
    });
  }
  /** sends the commands in one write, as a client's pipeline would */
  send(...cmds: string[][]): void {
    this.sock.write(Buffer.concat(cmds.map((c) => encodeCommand(c))));
  }
  /** the bytes of the next `n` complete replies (whatever their type), taken off the buffer */
  async replies(n: number, ms = 10_000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const d = new RespDecoder();
      const values = d.feed(this.buf);
      if (values.length >= n) {
        // the length of the first n values: decode growing prefixes until n complete
        for (let len = 1; len <= this.buf.length; len++) {
          if (new RespDecoder().feed(this.buf.subarray(0, len)).length === n) {
            const out = this.buf.subarray(0, len).toString('latin1');
            this.buf = this.buf.subarray(len);
            return out;
          }
        }
      }
      if (Date.now() > end)
        throw new Error(`timed out waiting for ${n} replies; got ${JSON.stringify(String(this.buf))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  close(): void {
    this.sock.destroy();
  }
}

/** the RESP3 bytes of Redis's HELLO map for this server (id and role vary) */
const helloMap3 = (proto: 2 | 3) =>
  new RegExp(
    '^%7\\r\\n' +
      '\\$6\\r\\nserver\\r\\n\\$6\\r\\ndecree\\r\\n' +
      '\\$7\\r\\nversion\\r\\n\\$5\\r\\n0\\.1\\.0\\r\\n' +
      `\\$5\\r\\nproto\\r\\n:${proto}\\r\\n` +
      '\\$2\\r\\nid\\r\\n:\\d+\\r\\n' +
      '\\$4\\r\\nmode\\r\\n\\$10\\r\\nstandalone\\r\\n' +
      '\\$4\\r\\nrole\\r\\n(?:\\$6\\r\\nmaster|\\$7\\r\\nreplica)\\r\\n' +
      '\\$7\\r\\nmodules\\r\\n\\*0\\r\\n$',
  );

describe('client libraries against a replicated cluster', () => {
  let cluster: LocalCluster<KvMachine>;
  const servers: KvServer[] = [];
  const ports: number[] = [];
  let leaderPort = 0;
  let followerPort = 0;

  beforeAll(async () => {
    // the tests address "the leader" and "a follower" by port: a steady leader (under the whole suite's
    // load, the default 0.5-1 s election timeout let leadership move mid-file)
    cluster = await new LocalCluster({ n: 3, makeStateMachine: () => new KvMachine(), steady: true }).start();
    const leader = await cluster.waitForLeader();
    for (const r of cluster.replicas) {
      const s = new KvServer({
        port: 0,
        backend: backendFor(r, cluster.machines.get(r.id)!, { readIndex: 0, execute: 0 }),
      });
      servers.push(s);
      ports.push((await s.listen()).port);
    }
    const li = cluster.replicas.indexOf(leader);
    leaderPort = ports[li]!;
    followerPort = ports[(li + 1) % 3]!;
  }, 30_000);

  afterAll(async () => {
    for (const s of servers) await s.close();
    await cluster?.stop();
  });

  it(`ioredis ${IOREDIS_VERSION}, default options (it negotiates RESP3 with HELLO 3), on a follower`, async () => {
    const r = new Redis(followerPort, '127.0.0.1');
    try {
      // the handshake: HELLO 3 took, and CLIENT SETINFO recorded the library
      const info = String(await r.client('INFO'));
      expect(info).toMatch(/ resp=3 /);
      expect(info).toMatch(new RegExp(` lib-name=ioredis lib-ver=${IOREDIS_VERSION.replace(/\./g, '\\.')}\\n$`));
      const before = await r.dbsize();
      expect(await r.set('io:a', '1')).toBe('OK');
      expect(await r.get('io:a')).toBe('1');
      expect(await r.get('io:missing')).toBe(null);
      expect(await r.incr('io:a')).toBe(2);
      expect(await r.incrby('io:a', 40)).toBe(42);
      expect(await r.mget('io:a', 'io:missing')).toEqual(['42', null]);
      for (let i = 0; i < 30; i++) await r.set(`io:k${i}`, String(i));
      expect(await r.dbsize()).toBe(before + 31);
      expect(await r.type('io:a')).toBe('string');
      expect(await r.type('io:missing')).toBe('none');
      expect(await r.ttl('io:a')).toBe(-1);
      expect(await r.ttl('io:missing')).toBe(-2);
      expect(await r.pttl('io:a')).toBe(-1);
      expect(await r.pttl('io:missing')).toBe(-2);
      // a full SCAN through ioredis's own stream: every key once
      const seen: string[] = [];
      await new Promise<void>((resolve, reject) => {
        r.scanStream({ match: 'io:k*', count: 7 })
          .on('data', (keys: string[]) => seen.push(...keys))
          .on('end', resolve)
          .on('error', reject);
      });
      expect(seen.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `io:k${i}`).sort());
      const [cursor, keys] = await r.scan('0', 'MATCH', 'io:a', 'COUNT', '100000');
      expect(cursor).toBe('0');
      expect(keys).toEqual(['io:a']);
      // HELLO: the map (ioredis's legacy reply mapping flattens it as for RESP2)
      const hello = (await r.call('HELLO')) as unknown[];
      expect(hello.slice(0, 6).map(String)).toEqual(['server', 'decree', 'version', '0.1.0', 'proto', '3']);
      expect(await r.del('io:a', 'io:missing', 'io:k0')).toBe(2);
      expect(await r.get('io:a')).toBe(null);
      expect(await r.dbsize()).toBe(before + 29);
    } finally {
      r.disconnect();
    }
  });

  it(`ioredis ${IOREDIS_VERSION} with protocol: 2 (RESP2, no HELLO), on the leader`, async () => {
    const r = new Redis({ port: leaderPort, host: '127.0.0.1', protocol: 2 });
    try {
      expect(String(await r.client('INFO'))).toMatch(/ resp=2 lib-name=ioredis /);
      expect(await r.set('io2:a', 'x')).toBe('OK');
      expect(await r.mget('io2:a', 'io2:none')).toEqual(['x', null]);
      expect(await r.type('io2:a')).toBe('string');
      expect(await r.ttl('io2:none')).toBe(-2);
      const hello = (await r.call('HELLO')) as unknown[];
      expect(hello.map((v) => (Array.isArray(v) ? v : String(v)))).toEqual([
        'server',
        'decree',
        'version',
        '0.1.0',
        'proto',
        '2',
        'id',
        expect.stringMatching(/^\d+$/),
        'mode',
        'standalone',
        'role',
        'master',
        'modules',
        [],
      ]);
      expect(String(await r.client('INFO'))).toMatch(/ resp=2 /); // HELLO without a version keeps it
    } finally {
      r.disconnect();
    }
  });

  it(`node-redis (redis ${NODE_REDIS_VERSION}) with RESP: 3, on a follower`, async () => {
    const c = createClient({ socket: { host: '127.0.0.1', port: followerPort }, RESP: 3 });
    c.on('error', () => {});
    await c.connect();
    try {
      const info = String(await c.clientInfo().then((i) => JSON.stringify(i)));
      expect(info).toMatch(/"resp":3/);
      expect(info).toMatch(/"libName":"node-redis"/);
      expect(info).toMatch(new RegExp(`"libVer":"${NODE_REDIS_VERSION.replace(/\./g, '\\.')}"`));
      const before = await c.dbSize();
      expect(await c.set('nr:a', '10')).toBe('OK');
      expect(await c.get('nr:a')).toBe('10');
      expect(await c.get('nr:missing')).toBe(null);
      expect(await c.incr('nr:a')).toBe(11);
      expect(await c.mGet(['nr:a', 'nr:missing'])).toEqual(['11', null]);
      for (let i = 0; i < 25; i++) await c.set(`nr:k${i}`, String(i));
      expect(await c.dbSize()).toBe(before + 26);
      expect(await c.type('nr:a')).toBe('string');
      expect(await c.type('nr:missing')).toBe('none');
      expect(await c.ttl('nr:a')).toBe(-1);
      expect(await c.ttl('nr:missing')).toBe(-2);
      expect(await c.pTTL('nr:a')).toBe(-1);
      const seen: string[] = [];
      for await (const keys of c.scanIterator({ MATCH: 'nr:k*', COUNT: 5 })) seen.push(...keys);
      expect(seen.sort()).toEqual(Array.from({ length: 25 }, (_, i) => `nr:k${i}`).sort());
      expect(await c.scan('0', { MATCH: 'nr:k1*', COUNT: 100000, TYPE: 'string' })).toEqual({
        cursor: '0',
        keys: expect.arrayContaining(['nr:k1', 'nr:k10', 'nr:k19']),
      });
      expect(await c.scan('0', { COUNT: 100000, TYPE: 'hash' })).toEqual({ cursor: '0', keys: [] });
      // HELLO under RESP3: a map, which node-redis gives as an object
      expect(await c.hello()).toEqual({
        server: 'decree',
        version: '0.1.0',
        proto: 3,
        id: expect.any(Number),
        mode: 'standalone',
        role: 'replica',
        modules: [],
      });
      expect(await c.clientGetName()).toBe(null);
      expect(await c.clientSetName('nr-test')).toBe('OK');
      expect(await c.clientGetName()).toBe('nr-test');
      expect(await c.clientId()).toBe((await c.hello()).id);
      expect(await c.del(['nr:a', 'nr:k0', 'nr:missing'])).toBe(2);
      expect(await c.dbSize()).toBe(before + 24);
    } finally {
      c.destroy();
    }
  });

  it.skipIf(PY_REDIS === undefined)(
    `redis-py ${PY_REDIS ?? '(skipped: /usr/bin/python3 has no redis module; apt-get install python3-redis)'}` +
      ' from /usr/bin/python3 (RESP2, no HELLO), on a follower',
    async () => {
      const script = [
        'import json, sys, redis',
        'r = redis.Redis(port=int(sys.argv[1]))',
        'r.set("a", "1")',
        'print(r.get("a"))',
        'r.mset({"py:x": "5", "py:y": "6"})',
        'out = {"incr": r.incr("py:x"), "mget": [v and v.decode() for v in r.mget("py:x", "py:none")],',
        '  "type": r.type("py:y").decode(), "ttl": [r.ttl("py:y"), r.ttl("py:none")],',
        '  "scan": sorted(k.decode() for k in r.scan_iter(match="py:*", count=1)), "dbsize": r.dbsize(),',
        '  "del": r.delete("py:x", "py:none"), "resp": r.client_info()["resp"]}',
        'print(json.dumps(out))',
      ].join('\n');
      const out = await new Promise<string>((resolve, reject) =>
        execFile(PY, ['-c', script, String(followerPort)], { timeout: 20_000 }, (e, so, se) =>
          e ? reject(new Error(`${e.message}\n${se}`)) : resolve(so),
        ),
      );
      const [first, json] = out.trim().split('\n');
      expect(first).toBe("b'1'");
      const got = JSON.parse(json!);
      expect(got).toMatchObject({
        incr: 6,
        mget: ['6', null],
        type: 'string',
        ttl: [-1, -2],
        scan: ['py:x', 'py:y'],
        del: 1,
        resp: '2',
      });
      expect(got.dbsize).toBeGreaterThanOrEqual(3);
    },
  );

  it('the bytes redis-py 8 sends on connect (HELLO 3, CLIENT SETINFO ×2), then SET, GET: RESP3 replies', async () => {
    const b = await Bytes.connect(leaderPort);
    try {
      b.send(['HELLO', '3']);
      expect(await b.replies(1)).toMatch(helloMap3(3));
      b.send(['CLIENT', 'SETINFO', 'LIB-NAME', 'redis-py'], ['CLIENT', 'SETINFO', 'LIB-VER', '8.0.0']);
      expect(await b.replies(2)).toBe('+OK\r\n+OK\r\n');
      b.send(['SET', 'py8:a', '1']);
      expect(await b.replies(1)).toBe('+OK\r\n');
      b.send(['GET', 'py8:a']);
      expect(await b.replies(1)).toBe('$1\r\n1\r\n');
      b.send(['GET', 'py8:missing']);
      expect(await b.replies(1)).toBe('_\r\n');
      b.send(['MGET', 'py8:a', 'py8:missing'], ['TYPE', 'py8:a'], ['TTL', 'py8:missing'], ['DBSIZE']);
      expect(await b.replies(4)).toMatch(/^\*2\r\n\$1\r\n1\r\n_\r\n\+string\r\n:-2\r\n:\d+\r\n$/);
      b.send(['SCAN', '0', 'MATCH', 'py8:*', 'COUNT', '1000000']);
      expect(await b.replies(1)).toBe('*2\r\n$1\r\n0\r\n*1\r\n$5\r\npy8:a\r\n');
      b.send(['CLIENT', 'GETNAME'], ['CLIENT', 'INFO']);
      const r = await b.replies(2);
      expect(r).toMatch(/^_\r\n=\d+\r\ntxt:id=\d+ /); // RESP3 null, then a verbatim string
      expect(r).toMatch(/ resp=3 lib-name=redis-py lib-ver=8\.0\.0\n\r\n$/);
      // HELLO 2 goes back to RESP2: the map is a flat array, nil is $-1
      b.send(['HELLO', '2'], ['GET', 'py8:missing']);
      expect(await b.replies(2)).toMatch(/^\*14\r\n\$6\r\nserver\r\n.*\$5\r\nproto\r\n:2\r\n.*\*0\r\n\$-1\r\n$/s);
    } finally {
      b.close();
    }
  });

  it('HELLO in the middle of a pipeline: each reply in the protocol of the moment its command was read', async () => {
    const b = await Bytes.connect(followerPort);
    try {
      b.send(
        ['GET', 'mid:none'],
        ['HELLO', '3'],
        ['GET', 'mid:none'],
        ['HELLO', '2', 'SETNAME', 'mid'],
        ['GET', 'x:none'],
      );
      const r = await b.replies(5);
      expect(r.startsWith('$-1\r\n%7\r\n')).toBe(true);
      expect(r).toMatch(/\*0\r\n_\r\n\*14\r\n/); // the end of the map, RESP3 null, then the RESP2 HELLO
      expect(r.endsWith('*0\r\n$-1\r\n')).toBe(true);
      b.send(['CLIENT', 'GETNAME']);
      expect(await b.replies(1)).toBe('$3\r\nmid\r\n');
    } finally {
      b.close();
    }
  });

  it('malformed HELLO, SCAN and CLIENT arguments: an -ERR each, protocol unchanged, server serving', async () => {
    const r = await Raw.connect(followerPort);
    try {
      const cases: [string[], RegExp][] = [
        [['HELLO', '4'], /^NOPROTO sorry, this protocol version is not supported\.$/],
        [['HELLO', '1'], /^NOPROTO /],
        [['HELLO', 'three'], /^ERR Protocol version is not an integer or out of range$/],
        [['HELLO', '99999999999999999999999'], /^ERR Protocol version is not an integer or out of range$/],
        [['HELLO', '3', 'junk'], /^ERR Syntax error in HELLO option 'junk'$/],
        [['HELLO', '3', 'AUTH', 'default'], /^ERR Syntax error in HELLO option 'AUTH'$/],
        [['HELLO', '3', 'SETNAME'], /^ERR Syntax error in HELLO option 'SETNAME'$/],
        [['HELLO', '3', 'SETNAME', 'a b'], /^ERR Client names cannot contain spaces/],
        [['HELLO', '3', 'AUTH', 'nobody', 'pw'], /^WRONGPASS /],
        [['SCAN'], /^ERR wrong number of arguments for 'scan' command$/],
        [['SCAN', 'abc'], /^ERR invalid cursor$/],
        [['SCAN', '-1'], /^ERR invalid cursor$/],
        [['SCAN', '1.5'], /^ERR invalid cursor$/],
        [['SCAN', '18446744073709551616'], /^ERR invalid cursor$/],
        [['SCAN', '0', 'COUNT', '0'], /^ERR syntax error$/],
        [['SCAN', '0', 'COUNT', '-3'], /^ERR syntax error$/],
        [['SCAN', '0', 'COUNT', 'ten'], /^ERR value is not an integer or out of range$/],
        [['SCAN', '0', 'COUNT'], /^ERR syntax error$/],
        [['SCAN', '0', 'MATCH'], /^ERR syntax error$/],
        [['SCAN', '0', 'LIMIT', '5'], /^ERR syntax error$/],
        [['TYPE'], /^ERR wrong number of arguments for 'type' command$/],
        [['TTL', 'a', 'b'], /^ERR wrong number of arguments for 'ttl' command$/],
        [['DBSIZE', 'x'], /^ERR wrong number of arguments for 'dbsize' command$/],
        [['CLIENT', 'SETINFO', 'LIB-NAME', 'has space'], /^ERR lib-name cannot contain spaces/],
        [['CLIENT', 'SETINFO', 'COLOR', 'red'], /^ERR Unrecognized option 'COLOR'$/],
        [['CLIENT', 'SETINFO', 'LIB-VER'], /^ERR wrong number of arguments for 'client\|setinfo' command$/],
        [['CLIENT', 'SETNAME', 'a\nb'], /^ERR Client names cannot contain spaces/],
        [['CLIENT', 'TRACKING', 'ON'], /^ERR CLIENT TRACKING is not supported/],
        [['CLIENT', 'BOGUS'], /^ERR unknown subcommand 'BOGUS'/],
      ];
      for (const [args] of cases) r.cmd(...args);
      r.cmd('GET', 'mal:none');
      r.cmd('SCAN', '18446744073709551615'); // the largest cursor Redis accepts: a finished scan
      const got = await r.replies(cases.length + 2);
      for (let i = 0; i < cases.length; i++) expect(msg(got[i]), cases[i]![0].join(' ')).toMatch(cases[i]![1]);
      expect(got[cases.length]).toBe(null);
      expect(got[cases.length + 1]).toEqual([Buffer.from('0'), []]);
      expect(r.closed).toBe(false);
      r.cmd('CLIENT', 'INFO');
      expect(String((await r.replies(1))[0])).toMatch(/ resp=2 /); // no failed HELLO switched it
    } finally {
      r.close();
    }
    // another connection is served
    const other = await Raw.connect(followerPort);
    try {
      other.cmd('HELLO', '3');
      other.cmd('PING');
      const [h, pong] = await other.replies(2);
      expect(h).toBeInstanceOf(RespMap);
      expect((h as RespMap).get('proto')).toBe(3);
      expect(pong).toBe('PONG');
    } finally {
      other.close();
    }
  });
});
