/**
 * KvServer over an in-process 3-replica LocalCluster (real time, loopback sockets): read modes,
 * sessions, errors, limits, AUTH, and fast-check fuzzing of a live server.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import Redis from 'ioredis';
import { KvMachine, encodeInt } from '@decree/kv-machine';
import { LocalCluster } from '@decree/testkit';
import { KvServer, RespErrorReply, RespMap, encodeCommand, type KvBackend } from '../src/index.ts';
import { Raw, backendFor, msg } from './helpers.ts';

describe('KvServer over a LocalCluster', () => {
  let cluster: LocalCluster<KvMachine>;
  const servers: KvServer[] = [];
  const ports: number[] = [];
  const counters: { readIndex: number; execute: number }[] = [];
  let leaderIdx = 0;
  let followerIdx = 1;
  let authServer: KvServer;
  let authPort = 0;

  beforeAll(async () => {
    // the tests address "the leader" and "a follower" by port: a steady leader (under the whole suite's
    // load, the default 0.5-1 s election timeout let leadership move mid-file)
    cluster = await new LocalCluster({ n: 3, makeStateMachine: () => new KvMachine(), steady: true }).start();
    const leader = await cluster.waitForLeader();
    for (const r of cluster.replicas) {
      const c = { readIndex: 0, execute: 0 };
      counters.push(c);
      const s = new KvServer({
        port: 0,
        backend: backendFor(r, cluster.machines.get(r.id)!, c),
        maxValueBytes: 1024,
        limits: { maxBulkLength: 64 * 1024 },
      });
      servers.push(s);
      ports.push((await s.listen()).port);
    }
    leaderIdx = cluster.replicas.indexOf(leader);
    followerIdx = (leaderIdx + 1) % 3;
    authServer = new KvServer({
      port: 0,
      password: 's3cret',
      backend: backendFor(leader, cluster.machines.get(leader.id)!, { readIndex: 0, execute: 0 }),
    });
    authPort = (await authServer.listen()).port;
  }, 30_000);

  afterAll(async () => {
    for (const s of [...servers, authServer]) await s?.close();
    await cluster?.stop();
  });

  it('a read after an acknowledged write sees it, on the leader (read-index, no slot) and on a follower', async () => {
    const l = new Redis({
      port: ports[leaderIdx]!,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableReadyCheck: false,
    });
    const f = new Redis({
      port: ports[followerIdx]!,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableReadyCheck: false,
    });
    try {
      await l.connect();
      await f.connect();
      for (let i = 0; i < 20; i++) {
        expect(await f.set('k', `v${i}`)).toBe('OK'); // written through the follower
        const before = counters[leaderIdx]!.execute;
        expect(await l.get('k')).toBe(`v${i}`); // read on the leader through read-index
        expect(counters[leaderIdx]!.execute).toBe(before); // ...which took no log slot
        expect(await f.get('k')).toBe(`v${i}`); // read on a follower: through the log
      }
      expect(counters[leaderIdx]!.readIndex).toBeGreaterThan(0);
    } finally {
      l.disconnect();
      f.disconnect();
    }
  });

  it('keeps per-connection order in a pipeline mixing reads and writes', async () => {
    const r = await Raw.connect(ports[leaderIdx]!);
    try {
      const parts: Buffer[] = [];
      for (let i = 0; i < 50; i++) parts.push(encodeCommand(['SET', 'p', String(i)]), encodeCommand(['GET', 'p']));
      r.send(Buffer.concat(parts));
      const got = await r.replies(100);
      for (let i = 0; i < 50; i++) {
        expect(got[2 * i]).toBe('OK');
        expect(String(got[2 * i + 1])).toBe(String(i));
      }
      // writes in one chunk, reads in the next: the reads wait for the writes
      r.cmd('INCR', 'ord');
      r.cmd('INCR', 'ord');
      const a = await r.replies(2);
      r.cmd('SET', 'ord2', 'x');
      await new Promise((res) => setImmediate(res));
      r.cmd('GET', 'ord2');
      const b = await r.replies(2);
      expect(a).toEqual([1, 2]);
      expect(b[0]).toBe('OK');
      expect(String(b[1])).toBe('x');
    } finally {
      r.close();
    }
  });

  it('READONLY reads locally; DECREE.SLOT gives a token; DECREE.FASTREAD: once executed, or STALE', async () => {
    const f = await Raw.connect(ports[followerIdx]!);
    try {
      f.cmd('SET', 'fr', 'one');
      f.cmd('DECREE.SLOT');
      const [ok, slot] = await f.replies(2);
      expect(ok).toBe('OK');
      expect(typeof slot).toBe('number');
      expect(slot as number).toBeGreaterThan(0);
      f.cmd('DECREE.FASTREAD', String(slot), '5000', 'GET', 'fr');
      f.cmd('DECREE.FASTREAD', String((slot as number) + 1_000_000), '50', 'GET', 'fr');
      f.cmd('DECREE.FASTREAD', '1', '50', 'SET', 'fr', 'x');
      f.cmd('DECREE.FASTREAD', 'x', '50', 'GET', 'fr');
      const [fresh, stale, notRead, bad] = await f.replies(4);
      expect(String(fresh)).toBe('one');
      expect(msg(stale)).toMatch(/^STALE replica executed up to slot \d+, wanted \d+/);
      expect(msg(notRead)).toMatch(/FASTREAD serves GET/);
      expect(msg(bad)).toMatch(/non-negative integers/);
      f.cmd('READONLY');
      f.cmd('GET', 'fr');
      f.cmd('READWRITE');
      const [ro, local] = await f.replies(2);
      expect(ro).toBe('OK');
      // the follower has executed the slot (FASTREAD above proved it), so its local read sees the write
      expect(String(local)).toBe('one');
      await f.replies(1);
    } finally {
      f.close();
    }
  });

  it('DECREE.SESSION applies a (clientId, seq) once and returns the cached result on a retry', async () => {
    const r = await Raw.connect(ports[followerIdx]!);
    try {
      r.cmd('DECREE.SESSION', 'client-a', '1', 'INCR', 'ctr');
      r.cmd('DECREE.SESSION', 'client-a', '1', 'INCR', 'ctr'); // a retry
      r.cmd('DECREE.SESSION', 'client-a', '2', 'INCRBY', 'ctr', '10');
      r.cmd('DECREE.SESSION', 'client-a', '1', 'INCR', 'ctr'); // older than the last applied
      r.cmd('DECREE.SESSION', 'client-a', '3', 'GET', 'ctr');
      r.cmd('DECREE.SESSION', 'client-a', 'x', 'INCR', 'ctr');
      r.cmd('GET', 'ctr');
      const got = await r.replies(7);
      expect(got.slice(0, 3)).toEqual([1, 1, 11]);
      expect(msg(got[3])).toMatch(/stale session sequence/);
      expect(msg(got[4])).toMatch(/wraps writes only/);
      expect(msg(got[5])).toMatch(/seq must be/);
      expect(String(got[6])).toBe('11');
    } finally {
      r.close();
    }
  });

  it('unknown commands, wrong arity and oversized values get errors; the connection keeps working', async () => {
    const r = await Raw.connect(ports[leaderIdx]!);
    try {
      r.cmd('FLUBBER', 'a');
      r.cmd('GET');
      r.cmd('SET', 'big', Buffer.alloc(2048, 0x61));
      r.cmd('MSET', 'a', '1', 'big', Buffer.alloc(2048, 0x61));
      r.cmd('INCRBY', 'n', 'notanumber');
      r.cmd('SET', 'after', 'fine');
      r.cmd('GET', 'after');
      const got = await r.replies(7);
      expect(msg(got[0])).toMatch(/^ERR unknown command 'FLUBBER'/);
      expect(msg(got[1])).toMatch(/wrong number of arguments/);
      expect(msg(got[2])).toMatch(/value too large/);
      expect(msg(got[3])).toMatch(/value too large/);
      expect(msg(got[4])).toMatch(/not an integer/);
      expect(got[5]).toBe('OK');
      expect(String(got[6])).toBe('fine');
      expect(r.closed).toBe(false);
    } finally {
      r.close();
    }
  });

  it('a request above the size limit is a protocol error: the connection closes, the server goes on', async () => {
    const r = await Raw.connect(ports[leaderIdx]!);
    r.send(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${128 * 1024}\r\n`);
    const [e] = await r.replies(1);
    expect(msg(e)).toMatch(/Protocol error/);
    await r.replies(1, 2_000); // waits for the close
    expect(r.closed).toBe(true);
    const ok = await Raw.connect(ports[leaderIdx]!);
    ok.cmd('PING');
    expect(await ok.replies(1)).toEqual(['PONG']);
    ok.close();
  });

  it('AUTH: commands before AUTH get NOAUTH, a wrong password WRONGPASS, the right one works', async () => {
    const r = await Raw.connect(authPort);
    try {
      r.cmd('GET', 'k');
      r.cmd('AUTH', 'wrong');
      r.cmd('SET', 'k', 'v');
      r.cmd('AUTH', 's3cret');
      r.cmd('PING');
      const got = await r.replies(5);
      expect(msg(got[0])).toMatch(/^NOAUTH/);
      expect(msg(got[1])).toMatch(/^WRONGPASS/);
      expect(msg(got[2])).toMatch(/^NOAUTH/);
      expect(got[3]).toBe('OK');
      expect(got[4]).toBe('PONG');
    } finally {
      r.close();
    }
    const h = await Raw.connect(authPort);
    try {
      h.cmd('HELLO', '3');
      h.cmd('HELLO', '3', 'AUTH', 'someone', 's3cret');
      h.cmd('HELLO', '3', 'AUTH', 'default', 's3cret');
      h.cmd('GET', 'authed-none');
      h.cmd('HELLO', '2', 'AUTH', 'default', 'nope');
      h.cmd('HELLO', '2', 'AUTH', 'default', 's3cret');
      h.cmd('GET', 'authed-none');
      const got = await h.replies(7);
      expect(msg(got[0])).toMatch(/^NOAUTH HELLO must be called with the client already authenticated/);
      expect(msg(got[1])).toMatch(/^WRONGPASS/); // the one user is "default"
      expect(got[2]).toBeInstanceOf(RespMap);
      expect((got[2] as RespMap).get('proto')).toBe(3);
      expect(got[3]).toBe(null); // RESP3 null
      expect(msg(got[4])).toMatch(/^WRONGPASS/);
      expect(Array.isArray(got[5])).toBe(true); // RESP2: the map as a flat array
      expect(got[6]).toBe(null);
    } finally {
      h.close();
    }
    // ioredis 6 (HELLO 3 AUTH default <password>: RESP3) with the password works
    const good = new Redis({
      port: authPort,
      password: 's3cret',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableReadyCheck: false,
    });
    good.on('error', () => {});
    try {
      await good.connect();
      expect(await good.set('authed', '1')).toBe('OK');
      expect(await good.get('authed')).toBe('1');
    } finally {
      good.disconnect();
    }
  });

  it('fuzz: random bytes and random commands never crash the server; other connections keep being served', async () => {
    const port = ports[followerIdx]!;
    const watcher = await Raw.connect(port);
    const words = [
      'GET',
      'SET',
      'MGET',
      'MSET',
      'DEL',
      'INCR',
      'DECR',
      'INCRBY',
      'CAS',
      'CASNX',
      'EXISTS',
      'PING',
      'ECHO',
      'READONLY',
      'READWRITE',
      'DECREE.SLOT',
      'DECREE.FASTREAD',
      'DECREE.SESSION',
      'DECREE',
      'AUTH',
      'SELECT',
      'INFO',
      'HELLO',
      'NOPE',
      '0',
      '-1',
      '99999999999999999999',
      '',
    ];
    const arg = fc.oneof(
      fc.constantFrom(...words),
      fc.string({ maxLength: 12 }),
      fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
    );
    const command = fc
      .tuple(fc.constantFrom(...words.slice(0, 23)), fc.array(arg, { maxLength: 6 }))
      .map(([n, a]) => encodeCommand([n, ...a]));
    const payload = fc.array(
      fc.oneof(
        command,
        fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
      ),
      { minLength: 1, maxLength: 8 },
    );
    let round = 0;
    let errors = 0;
    let replies = 0;
    await fc.assert(
      fc.asyncProperty(payload, async (parts) => {
        const r = await Raw.connect(port);
        try {
          r.send(Buffer.concat(parts));
          r.cmd('PING'); // answered unless the connection was closed for a protocol error
          const got: unknown[] = []; // whatever came back up to the PONG (or the close): all of it decoded as RESP
          const end = Date.now() + 5_000;
          while (!r.closed && Date.now() < end && got[got.length - 1] !== 'PONG')
            got.push(...(await r.replies(1, 1_000)));
          errors += got.filter((g) => g instanceof RespErrorReply).length;
          replies += got.length;
        } finally {
          r.close();
        }
        // a clean connection is still served
        watcher.cmd('ECHO', `alive-${round}`);
        const [echo] = await watcher.replies(1);
        expect(String(echo)).toBe(`alive-${round}`);
        round++;
      }),
      { numRuns: 60, seed: 4242 },
    );
    watcher.close();
    // every reply the fuzzed connections got was RESP (the decoder above would have thrown otherwise);
    // the server is whole
    const s = servers[followerIdx]!;
    expect(s.stats.commands).toBeGreaterThan(0);
    expect(s.stats.protocolErrors).toBeGreaterThan(0); // random bytes did hit the protocol-error path
    expect(errors).toBeGreaterThan(0); // ...and bad commands got error replies
    expect(replies).toBeGreaterThan(errors);
  }, 60_000);
});

describe('KvServer: each pipelined command gets its own answer (issue #17)', () => {
  it('a chunk partly executed: results for the executed commands, TRYAGAIN saying which may have run', async () => {
    const { NotLeaderError } = await import('@decree/replica');
    const backend: KvBackend = {
      execute: async () => {
        throw new Error('not used: executeEach is preferred');
      },
      executeEach: async (cmds) => ({
        results: cmds.map((_, i) => (i < 2 ? encodeInt(i + 10) : undefined)),
        slot: 17,
        failed: [
          { index: 2, error: new NotLeaderError('r2', true), maybeExecuted: true },
          { index: 3, error: new NotLeaderError('r2', false), maybeExecuted: false },
        ],
      }),
      readLocal: () => new Uint8Array(0),
      status: () => ({}),
    };
    const server = new KvServer({ port: 0, backend });
    const { port } = await server.listen();
    const c = await Raw.connect(port);
    try {
      for (let i = 0; i < 4; i++) c.cmd('INCR', 'n');
      c.cmd('DECREE.SLOT');
      const [a, b, maybe, not, slot] = await c.replies(5);
      expect([a, b]).toEqual([10, 11]);
      expect(msg(maybe)).toMatch(/^TRYAGAIN .*\(it may have executed\)$/);
      expect(msg(not)).toMatch(/^TRYAGAIN .*\(not executed\)$/);
      expect(slot).toBe(17); // the token names the slot the executed commands were in
    } finally {
      c.close();
      await server.close();
    }
  });
});

describe('KvServer: the single-command path', () => {
  it('a reply is written in the task its outcome arrives in, not on a later turn of the event loop', async () => {
    let release!: () => void;
    const backend: KvBackend = {
      execute: async () => {
        throw new Error('not used: executeEach is preferred');
      },
      executeEach: (cmds) =>
        new Promise((resolve) => {
          release = () => resolve({ results: cmds.map(() => encodeInt(42)), slot: 1 });
        }),
      readLocal: () => new Uint8Array(0),
      status: () => ({}),
    };
    const server = new KvServer({ port: 0, backend });
    const { port } = await server.listen();
    const c = await Raw.connect(port);
    const log: string[] = [];
    const write = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, ...a: Parameters<typeof write>) {
      if (String(a[0]).startsWith(':42')) log.push('reply written');
      return write.apply(this, a);
    } as typeof write;
    try {
      c.cmd('INCR', 'n');
      for (let i = 0; i < 200 && !release; i++) await new Promise((r) => setTimeout(r, 5));
      release(); // the outcome arrives; a turn of the event loop later:
      setImmediate(() => log.push('next turn'));
      const [r] = await c.replies(1);
      expect(r).toBe(42);
      await new Promise((ok) => setTimeout(ok, 10));
      expect(log).toEqual(['reply written', 'next turn']);
    } finally {
      net.Socket.prototype.write = write;
      c.close();
      await server.close();
    }
  });
});
