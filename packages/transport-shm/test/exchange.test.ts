/**
 * The RDMA exchange end to end without hardware: real TCP side channels (RdmaSideChannel) between
 * in-process replicas whose verbs layer is a MemoryFabric (queue pairs that only carry writes when
 * both ends were connected to each other's qpn, psn, lid/gid, rkey, address and length, as RC
 * does). Checks that after the exchange each side's endpoints point at the right peer's, that a peer
 * restart (either role) or a failed RDMA write leads to a fresh exchange, and that a wrong secret,
 * a missing one, a protocol version mismatch, a non-member and altered endpoint details are refused
 * with clear errors.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '@decree/protocol';
import { encodeValue } from '@decree/protocol';
import { FrameReader, MAGIC, decodeWelcome, encodeAuth, encodeHello, frames, handshakeProof } from '@decree/wire';
import {
  MemoryFabric,
  RdmaExchangeError,
  ShmTransportError,
  createRdmaSideChannel,
  createRdmaTransport,
  decodeRdmaInfo,
  encodeRdmaInfo,
  type MemoryHost,
  type RdmaLinkInfo,
  type RdmaSideChannel,
  type RdmaTransport,
} from '../src/index.ts';
import { sleep, waitFor } from './helpers.ts';

const hb = (from: string, to: string, n: number): Message => ({
  type: 'heartbeat-ack',
  ring: 'default',
  from,
  to,
  ballot: { round: 1, leader: from },
  appliedUpTo: n,
});

interface Node {
  id: string;
  host: MemoryHost;
  ch: RdmaSideChannel;
  t: RdmaTransport;
  got: Message[];
  errors: (RdmaExchangeError | ShmTransportError)[];
}

interface Opts {
  secret?: string;
  versions?: { min: number; max: number };
  host?: MemoryHost;
}

/** One cluster: a fabric, a directory of side-channel addresses, the nodes running. */
class Cluster {
  readonly fabric = new MemoryFabric();
  readonly addrs: Record<string, { host: string; port: number }> = {};
  readonly nodes = new Map<string, Node>();
  constructor(readonly ids: string[]) {}

  async start(id: string, o: Opts = {}): Promise<Node> {
    const host = o.host ?? this.fabric.host(id);
    const errors: Node['errors'] = [];
    // a peer that has not started yet has no address in this test's directory: not a failure under test
    const onError = (e: RdmaExchangeError | ShmTransportError) =>
      void (/^no side-channel address for replica /.test(e.message) || errors.push(e));
    const ch = createRdmaSideChannel({
      self: id,
      listen: { host: '127.0.0.1', port: 0 },
      peers: (p) => this.addrs[p],
      ...(o.secret ? { secret: o.secret } : {}),
      ...(o.versions ? { protocolVersions: o.versions } : {}),
      keepaliveMs: 200,
      handshakeTimeoutMs: 3000,
      backoff: { initialMs: 10, maxMs: 100 },
      logger: false,
      onError,
    });
    const t = await createRdmaTransport({
      self: id,
      peers: this.ids,
      exchange: ch,
      verbs: host,
      capacity: 1 << 16,
      logger: false,
      onError,
    });
    this.addrs[id] = ch.address();
    const node: Node = { id, host, ch, t, got: [], errors };
    t.setReceiver((m) => node.got.push(m));
    this.nodes.set(id, node);
    return node;
  }

  async stop(id: string, crash = false): Promise<MemoryHost> {
    const n = this.nodes.get(id)!;
    this.nodes.delete(id);
    delete this.addrs[id];
    if (crash) n.host.crash(); // the process dies: its queue pairs are gone before anyone is told
    await n.t.close();
    return n.host;
  }

  /** every live pair's sessions are ready and point at each other (undefined while not yet) */
  wired(): true | undefined {
    const nodes = [...this.nodes.values()];
    for (const a of nodes)
      for (const b of nodes) {
        if (a === b) continue;
        const x = a.t.endpointInfo(b.id);
        const y = b.t.endpointInfo(a.id);
        if (!x?.ready || !y?.ready || !a.t.isConnected(b.id)) return undefined;
        if (!sameLink(x.remote, y.local) || !sameLink(y.remote, x.local)) return undefined;
      }
    return true;
  }

  /** The fabric's view: a's writer for b is connected to b's reader for a, and the other way round. */
  expectWired(): void {
    const f = this.fabric;
    for (const a of this.nodes.values())
      for (const b of this.nodes.values()) {
        if (a === b) continue;
        const x = a.t.endpointInfo(b.id)!;
        const y = b.t.endpointInfo(a.id)!;
        const aw = f.endpoint(x.local.writer.qpn)!;
        const ar = f.endpoint(x.local.reader.qpn)!;
        expect(aw.host.name, `${a.id}'s writer for ${b.id}`).toBe(a.host.name);
        expect(aw.remote!.qpn, `${a.id}'s writer for ${b.id} targets ${b.id}'s reader for ${a.id}`).toBe(
          y.local.reader.qpn,
        );
        expect(aw.remote!.rkey).toBe(y.local.reader.rkey);
        expect(aw.remote!.addr).toBe(y.local.reader.addr);
        expect(aw.remote!.psn).toBe(y.local.reader.psn);
        expect(ar.remote!.qpn, `${a.id}'s reader for ${b.id} is connected to ${b.id}'s writer for ${a.id}`).toBe(
          y.local.writer.qpn,
        );
        expect(f.endpoint(ar.remote!.qpn)!.host.name).toBe(b.host.name);
      }
  }

  /** Every node sends one message to every other; each arrives once, from the right sender, nothing misrouted. */
  async expectTraffic(tag: number): Promise<void> {
    const nodes = [...this.nodes.values()];
    for (const a of nodes) for (const b of nodes) if (a !== b) a.t.send(hb(a.id, b.id, tag));
    for (const b of nodes) {
      const want = nodes
        .filter((a) => a !== b)
        .map((a) => a.id)
        .sort();
      const got = await waitFor(
        `${b.id} hears from ${want.join(',')} (tag ${tag})`,
        () => {
          const from = b.got
            .filter((m) => m.type === 'heartbeat-ack' && m.appliedUpTo === tag)
            .map((m) => m.from)
            .sort();
          return from.length >= want.length ? from : undefined;
        },
        10_000,
      );
      expect(got).toEqual(want);
      expect(b.t.stats().misrouted).toBe(0);
    }
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.t.close()));
    this.nodes.clear();
  }
}

function sameLink(a: RdmaLinkInfo | undefined, b: RdmaLinkInfo): boolean {
  if (!a) return false;
  const same = (p: RdmaLinkInfo['reader'], q: RdmaLinkInfo['reader']) =>
    p.qpn === q.qpn &&
    p.psn === q.psn &&
    p.rkey === q.rkey &&
    p.addr === q.addr &&
    p.len === q.len &&
    p.lid === q.lid &&
    Buffer.from(p.gid).equals(Buffer.from(q.gid));
  return same(a.reader, b.reader) && same(a.writer, b.writer);
}

const clusters: Cluster[] = [];
function cluster(ids: string[]): Cluster {
  const c = new Cluster(ids);
  clusters.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.closeAll()));
});

describe('RDMA exchange over the TCP side channel (in-memory verbs)', () => {
  it('three replicas trade endpoint details; each side connects to the right peer and messages flow', async () => {
    const c = cluster(['r1', 'r2', 'r3']);
    for (const id of c.ids) await c.start(id, { secret: 'a shared secret' });
    await waitFor('all pairs wired', () => c.wired());
    c.expectWired();
    // one fabric connect per endpoint: 3 replicas x 2 peers x (reader + writer)
    expect(c.fabric.connects.length).toBe(12);
    await c.expectTraffic(1);
    for (const n of c.nodes.values()) {
      expect(n.errors).toEqual([]);
      expect(n.host.endpoints.size).toBe(4); // a reader and a writer per peer, nothing left over
    }
  });

  it(
    'a peer that restarts gets a fresh exchange (new queue ' + 'pairs on both sides); what waited meanwhile arrives',
    async () => {
      const c = cluster(['r1', 'r2', 'r3']);
      for (const id of c.ids) await c.start(id);
      await waitFor('wired', () => c.wired());
      const r1 = c.nodes.get('r1')!;
      const before = r1.t.endpointInfo('r2')!;
      const exchangesBefore = r1.ch.exchanges;
      // r2 listens for r1 and dials r3: its restart exercises both roles
      const host = await c.stop('r2', true);
      await waitFor('r1 sees r2 gone', () => !r1.t.isConnected('r2') && r1.t.endpointInfo('r2') === undefined);
      expect(c.fabric.endpoint(before.local.writer.qpn)).toBeUndefined(); // r1 dropped that session's queue pairs
      expect(c.fabric.endpoint(before.local.reader.qpn)).toBeUndefined();
      r1.t.send(hb('r1', 'r2', 77)); // waits in r1's queue
      await sleep(30);
      expect(r1.t.stats().peers.r2!.queuedMessages).toBe(1);
      const r2 = await c.start('r2', { host }); // same host (lid, gid), a new process: new queue pairs
      await waitFor('wired again', () => c.wired());
      c.expectWired();
      const after = r1.t.endpointInfo('r2')!;
      expect(after.session).not.toBe(before.session);
      expect(after.local.writer.qpn).not.toBe(before.local.writer.qpn);
      expect(after.remote!.reader.qpn).not.toBe(before.remote!.reader.qpn);
      expect(r1.ch.exchanges).toBe(exchangesBefore + 1);
      expect(r1.t.stats().peers.r2!.reopens).toBe(1);
      await waitFor('the message that waited', () =>
        r2.got.find((m) => m.type === 'heartbeat-ack' && m.appliedUpTo === 77),
      );
      await c.expectTraffic(2);
      expect(c.nodes.get('r3')!.t.stats().peers.r2!.reopens).toBe(1);
    },
  );

  it('a failed RDMA write resets the session: both sides exchange again and the message goes through', async () => {
    const c = cluster(['a', 'b']);
    const a = await c.start('a');
    const b = await c.start('b');
    await waitFor('wired', () => c.wired());
    const before = a.t.endpointInfo('b')!;
    c.fabric.breakQp(before.local.writer.qpn); // the link fails: the QP goes to the error state
    a.t.send(hb('a', 'b', 5));
    await waitFor('the message after a re-exchange', () =>
      b.got.find((m) => m.type === 'heartbeat-ack' && m.appliedUpTo === 5),
    );
    expect(a.t.endpointInfo('b')!.session).not.toBe(before.session);
    expect(b.t.endpointInfo('a')!.local.reader.qpn).not.toBe(before.remote!.reader.qpn);
    expect(a.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(
        /^RDMA write to b failed: RDMA write failed: transport retry counter exceeded; exchanging endpoint details again$/,
      ),
    ]);
    expect(a.errors[0]).toMatchObject({ code: 'rdma', peer: 'b' });
    await waitFor('wired', () => c.wired());
    c.expectWired();
  });

  it('replicas restarting in any order always end up wired to each other (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ who: fc.constantFrom('p1', 'p2', 'p3'), crash: fc.boolean() }), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.shuffledSubarray(['p1', 'p2', 'p3'], { minLength: 3 }),
        async (restarts, order) => {
          const c = cluster(['p1', 'p2', 'p3']);
          try {
            for (const id of order) await c.start(id);
            for (const r of restarts) {
              const host = await c.stop(r.who, r.crash);
              await c.start(r.who, { host });
            }
            await waitFor('wired after the restarts', () => c.wired(), 15_000);
            c.expectWired();
            await c.expectTraffic(9);
            // old sessions' queue pairs all closed
            for (const n of c.nodes.values()) expect(n.host.endpoints.size).toBe(4);
          } finally {
            await c.closeAll();
          }
        },
      ),
      { numRuns: 4 },
    );
  });
});

/** A hand-made dialler: the TCP transport's handshake with `secret`, then whatever `after` sends. */
async function rawDial(
  port: number,
  id: string,
  to: string,
  secret: string | undefined,
  after: (w: ReturnType<typeof decodeWelcome>, nonce: Uint8Array) => Buffer[],
): Promise<string[]> {
  const s = net.connect({ host: '127.0.0.1', port });
  const nonce = randomBytes(16);
  const seen: string[] = [];
  let welcomed = false;
  const reader = new FrameReader(
    1 << 16,
    (p) => {
      if (!welcomed) {
        welcomed = true;
        const w = decodeWelcome(p);
        seen.push(`welcome ${w.status}${w.error ? ` ${w.error}` : ''}`);
        const proof =
          secret && w.nonce
            ? [encodeAuth(handshakeProof(Buffer.from(secret), 'decree/dialler', nonce, w.nonce, [id], w.ids))]
            : [];
        if (w.status === 0) s.write(frames([...proof, ...after(w, nonce)]));
      } else seen.push(`frame kind 0x${p[4]!.toString(16)}`);
      return true;
    },
    () => {},
  );
  s.on('data', (d) => reader.push(d));
  s.on('error', () => {});
  s.on('connect', () => s.write(frames([encodeHello({ minVersion: 1, maxVersion: 1, ids: [id], to, nonce })])));
  await new Promise<void>((r) => s.on('close', () => r()));
  return seen;
}

describe('refusals', () => {
  /** Starts two replicas with the given options and collects their errors for a while. */
  async function pairWith(a: Opts, b: Opts, listenerPrepares = false) {
    const c = cluster(['x1', 'x2']);
    const x1 = await c.start('x1', a);
    const x2 = await c.start('x2', b);
    await waitFor('errors on both sides', () => x1.errors.length > 0 && x2.errors.length > 0, 10_000);
    await sleep(100);
    expect(x1.t.isConnected('x2')).toBe(false);
    expect(x2.t.isConnected('x1')).toBe(false);
    // refused in the handshake: no endpoint was made, so no queue-pair details left either replica
    if (!listenerPrepares) expect(x1.host.endpoints.size + x2.host.endpoints.size).toBe(0);
    expect(c.fabric.connects).toEqual([]);
    return { x1, x2 };
  }

  it('a different shared secret: both sides say so', async () => {
    const { x1, x2 } = await pairWith({ secret: 'secret number one' }, { secret: 'secret number two' });
    expect(x1.errors[0]).toMatchObject({ code: 'auth', peer: 'x2' });
    expect(x1.errors[0]!.message).toMatch(
      /^x2@127\.0\.0\.1:\d+ failed the shared-secret check \(different secret\?\)$/,
    );
    expect(x2.errors[0]).toMatchObject({ code: 'auth', peer: 'x1' });
    expect(x2.errors[0]!.message).toMatch(
      /^x1@127\.0\.0\.1:\d+ closed the side channel before proving the shared secret \(different secret\?\)$/,
    );
  });

  it('a secret on one side only', async () => {
    const { x1, x2 } = await pairWith({}, { secret: 'only x2 has it' });
    expect(x1.errors[0]).toMatchObject({ code: 'auth', peer: 'x2' });
    expect(x1.errors[0]!.message).toMatch(/^x2@127\.0\.0\.1:\d+ requires a shared secret and none is configured here$/);
    expect(x2.errors[0]).toMatchObject({ code: 'auth', peer: 'x1' });
    // x2 has no secret, so it sends its details at once; x1 refuses before reading them
    const r = await pairWith({ secret: 'only x1 has it' }, {}, true);
    expect(r.x1.errors[0]!.message).toMatch(
      /^x2@127\.0\.0\.1:\d+ did not prove the shared secret \(is one configured there\?\)$/,
    );
    expect(r.x2.errors[0]).toMatchObject({ code: 'refused', peer: 'x1' });
    expect(r.x2.errors[0]!.message).toMatch(
      /^x1@127\.0\.0\.1:\d+ closed the side channel before the exchange completed/,
    );
  });

  it('no protocol version in common', async () => {
    const { x1, x2 } = await pairWith({ versions: { min: 1, max: 1 } }, { versions: { min: 2, max: 3 } });
    // the TCP transport's handshake (packages/wire), its wording; the refusal code crossed the wire
    expect(x2.errors[0]).toMatchObject({
      code: 'version',
      refusal: 'VERSION',
      message: 'peer x1 speaks protocol version 1, this replica (x2) supports 2..3',
    });
    expect(x1.errors[0]).toMatchObject({ code: 'version', refusal: 'VERSION' });
    expect(x1.errors[0]!.message).toMatch(
      /^x2@127\.0\.0\.1:\d+ refused the RDMA exchange: peer x1 speaks protocol version 1, this replica \(x2\) supports 2\.\.3$/,
    );
  });

  it('a replica that is not a member is refused before anything is exchanged', async () => {
    const c = cluster(['m1', 'm2']);
    const m2 = await c.start('m2');
    const seen = await rawDial(m2.ch.address().port, 'intruder', 'm2', undefined, () => []);
    expect(seen).toEqual(['welcome 2 refused intruder: intruder is not a member of this cluster']);
    expect(m2.errors[0]).toMatchObject({
      code: 'auth',
      refusal: 'NOT_MEMBER',
      message: 'refused intruder: intruder is not a member of this cluster',
    });
    expect(m2.host.endpoints.size).toBe(0);
  });

  it('endpoint details altered in transit fail their MAC', async () => {
    const c = cluster(['k1', 'k2']);
    const secret = 'the cluster secret';
    const k2 = await c.start('k2', { secret });
    const bogus: RdmaLinkInfo['reader'] = {
      lid: 1,
      qpn: 7,
      psn: 7,
      rkey: 7,
      addr: 4096n,
      len: 4096 + (1 << 16),
      gid: new Uint8Array(16),
    };
    const info = encodeRdmaInfo({ reader: bogus, writer: bogus });
    const seen = await rawDial(k2.ch.address().port, 'k1', 'k2', secret, () => {
      const frame = Buffer.concat([
        MAGIC,
        Buffer.from([0x10]),
        Buffer.from(encodeValue({ info, mac: randomBytes(32) })),
      ]);
      return [frame];
    });
    expect(seen[0]).toBe('welcome 0');
    await waitFor('k2 refuses', () => k2.errors.length > 0);
    expect(k2.errors[0]).toMatchObject({ code: 'auth', peer: 'k1' });
    expect(k2.errors[0]!.message).toMatch(
      /^the endpoint details from k1@127\.0\.0\.1:\d+ fail their MAC \(altered in transit\?\)$/,
    );
    await waitFor('k2 dropped the endpoints it made for that session', () => k2.host.endpoints.size === 0);
    expect(c.fabric.connects).toEqual([]);
  });
});

describe('liveness', () => {
  it('a peer that goes silent after the exchange is dropped after 3 missed pings', async () => {
    const c = cluster(['s1', 's2']);
    const s2 = await c.start('s2'); // keepaliveMs 200
    const bogus: RdmaLinkInfo['reader'] = {
      lid: 1,
      qpn: 9,
      psn: 9,
      rkey: 9,
      addr: 8192n,
      len: 4096 + (1 << 16),
      gid: new Uint8Array(16),
    };
    const info = encodeRdmaInfo({ reader: bogus, writer: bogus });
    const started = Date.now();
    const seen = await rawDial(s2.ch.address().port, 's1', 's2', undefined, () => [
      Buffer.concat([MAGIC, Buffer.from([0x10]), Buffer.from(encodeValue({ info }))]),
      Buffer.concat([MAGIC, Buffer.from([0x11])]),
    ]); // then silence: this dialler never pings
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(seen.slice(0, 3)).toEqual(['welcome 0', 'frame kind 0x10', 'frame kind 0x11']); // s2's details and READY
    expect(s2.errors[0]).toMatchObject({ code: 'protocol', peer: 's1' });
    expect(s2.errors[0]!.message).toMatch(/^no word from s1@127\.0\.0\.1:\d+ for 600 ms$/);
    await waitFor('s2 dropped the session', () => s2.host.endpoints.size === 0 && !s2.t.isConnected('s1'));
  });
});

describe('endpoint details codec', () => {
  const peerInfo = fc.record({
    lid: fc.integer({ min: 0, max: 0xffff }),
    qpn: fc.integer({ min: 0, max: 0xffffff }),
    psn: fc.integer({ min: 0, max: 0xffffff }),
    rkey: fc.integer({ min: 0, max: 0xffffffff }),
    addr: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    len: fc.integer({ min: 8192, max: 2 ** 32 + 4096 }),
    gid: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    device: fc.option(fc.string({ minLength: 1, maxLength: 64 }), { nil: undefined }),
  });

  it('round-trips any valid details', () => {
    const norm = (p: RdmaLinkInfo['reader']) => ({ ...p, gid: [...p.gid], device: p.device });
    fc.assert(
      fc.property(peerInfo, peerInfo, (r, w) => {
        const got = decodeRdmaInfo(encodeRdmaInfo({ reader: r, writer: w }));
        expect(norm(got.reader)).toEqual(norm(r));
        expect(norm(got.writer)).toEqual(norm(w));
      }),
    );
  });

  it('refuses anything else with a RdmaExchangeError naming the field, never another error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.anything().map((v) => encodeValue(v)),
          peerInfo.chain((p) =>
            fc
              .record({
                k: fc.constantFrom('lid', 'qpn', 'psn', 'rkey', 'addr', 'len', 'gid', 'device'),
                v: fc.anything(),
              })
              .map(({ k, v }) => encodeValue({ reader: { ...p, addr: Buffer.alloc(8), [k]: v }, writer: 1 })),
          ),
        ),
        (bytes) => {
          try {
            decodeRdmaInfo(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(RdmaExchangeError);
            expect((e as RdmaExchangeError).code).toBe('protocol');
          }
        },
      ),
    );
    expect(() =>
      decodeRdmaInfo(
        encodeValue({
          reader: { lid: 1, qpn: 2 ** 24, psn: 0, rkey: 0, addr: Buffer.alloc(8), len: 8192, gid: Buffer.alloc(16) },
          writer: {},
        }),
      ),
    ).toThrow('reader.qpn: must be an integer in 0..16777215');
  });
});
