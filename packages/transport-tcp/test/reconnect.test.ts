import { afterEach, describe, expect, it } from 'vitest';
import { backoffDelay, createTcpTransport, type PeerAddress } from '../src/index.ts';
import { makeMessage, node, waitFor, wire, type Node } from './helpers.ts';

const open: Node[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});
async function mk(...args: Parameters<typeof node>): Promise<Node> {
  const n = await node(...args);
  open.push(n);
  return n;
}

describe('backoff', () => {
  it('grows exponentially, is capped, and jitters within [d(1-j), d]', () => {
    const o = { initialMs: 10, maxMs: 1000, factor: 2, jitter: 0.5 };
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, o, () => 0))).toEqual([10, 20, 40, 80]);
    expect(backoffDelay(20, o, () => 0)).toBe(1000);
    expect(backoffDelay(10_000, o, () => 0)).toBe(1000);
    expect(backoffDelay(3, o, () => 0.999999)).toBeCloseTo(40, 3);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(i % 12, o);
      const cap = Math.min(1000, 10 * 2 ** (i % 12));
      expect(d).toBeGreaterThanOrEqual(cap / 2);
      expect(d).toBeLessThanOrEqual(cap);
    }
  });
});

describe('reconnection', () => {
  it('reconnects after the peer closes and comes back on the same port; messages sent meanwhile arrive', async () => {
    const dir: Record<string, PeerAddress> = {};
    const a = await mk('a', dir);
    const b1 = await mk('b', dir);
    dir.b = { host: '127.0.0.1', port: b1.port };
    a.t.send(makeMessage('accept', 'a', 'b', 'r0'));
    await waitFor(() => b1.got.length === 1, 'first message');
    expect(a.t.stats().peers.b!.connects).toBe(1);

    await b1.t.close();
    await waitFor(() => !a.t.isConnected('b'), 'a to see the link down');
    // retries fail while b is away (capped backoff keeps them coming)
    await waitFor(() => a.t.stats().connectFailures >= 2, 'failed retries');
    const during = Array.from({ length: 5 }, (_, i) => makeMessage('accept', 'a', 'b', `r${i + 1}`));
    for (const m of during) a.t.send(m);
    expect(a.t.stats().peers.b!.queuedMessages).toBe(5);

    const b2 = await mk('b', dir, { listen: { host: '127.0.0.1', port: b1.port } });
    expect(b2.port).toBe(b1.port);
    await waitFor(() => b2.got.length === 5, 'messages sent while b was down');
    expect(b2.got.map(wire)).toEqual(during.map(wire));
    const s = a.t.stats();
    expect(s.reconnects).toBe(1);
    expect(s.peers.b!.connects).toBe(2);
    expect(s.peers.b!.queuedMessages).toBe(0);
    expect(a.t.isConnected('b')).toBe(true);
    expect(a.errors.some((e) => e.code === 'connect' && e.peer === 'b')).toBe(true);
    // the first failure is a warning, later ones stay at debug level (no log flood)
    expect(a.logs.filter((l) => l.level === 'warn' && /cannot connect/.test(l.msg)).length).toBe(1);
  });

  it('resolves a host name again on every reconnect (the peer moved to a new IP)', async () => {
    let ip = '127.0.0.1';
    const asked: string[] = [];
    const lookup = async (host: string): Promise<string> => {
      asked.push(host);
      if (ip === 'fail') throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return ip;
    };
    const dir: Record<string, PeerAddress> = {};
    const b1 = await mk('b', {}, { listen: { host: '127.0.0.1', port: 0 } });
    dir.b = { host: 'b.decree.test', port: b1.port };
    const a = await mk('a', dir, { lookup });
    a.t.send(makeMessage('heartbeat', 'a', 'b'));
    await waitFor(() => b1.got.length === 1, 'via 127.0.0.1');
    expect(asked).toEqual(['b.decree.test']);

    ip = 'fail';
    await b1.t.close();
    await waitFor(() => a.t.stats().connectFailures >= 2, 'lookups failing');
    expect(a.errors.some((e) => e.code === 'connect' && /ENOTFOUND/.test(e.message))).toBe(true);
    // b comes back on another loopback address under the same name
    const b2 = await mk('b', {}, { listen: { host: '127.0.0.3', port: b1.port } });
    ip = '127.0.0.3';
    a.t.send(makeMessage('heartbeat', 'a', 'b', 'r2'));
    await waitFor(() => b2.got.length === 1, 'via 127.0.0.3');
    expect(b2.got[0]!.ring).toBe('r2');
    expect(asked.length).toBeGreaterThanOrEqual(3);
    expect(a.t.stats().peers.b!.lookups).toBe(asked.length);
    expect(a.t.stats().reconnects).toBe(1);
  });

  it('IP addresses are not looked up', async () => {
    let asked = 0;
    const dir: Record<string, PeerAddress> = {};
    const b = await mk('b', dir);
    dir.b = { host: '127.0.0.1', port: b.port };
    const a = await mk('a', dir, { lookup: async () => (asked++, '127.0.0.1') });
    a.t.send(makeMessage('decide', 'a', 'b'));
    await waitFor(() => b.got.length === 1, 'message');
    expect(asked).toBe(0);
  });
});

describe('handshake versions', () => {
  it('refuses a dialler of an unknown version with a clear error on both sides', async () => {
    const dir: Record<string, PeerAddress> = {};
    const b = await mk('b', dir, { protocolVersions: { min: 1, max: 1 } });
    const a = await mk('a', dir, { protocolVersions: { min: 9, max: 9 } });
    dir.b = { host: '127.0.0.1', port: b.port };
    a.t.send(makeMessage('prepare', 'a', 'b'));
    await waitFor(() => a.errors.some((e) => e.code === 'version-refused'), 'refusal at the dialler');
    const expected = 'peer a speaks protocol version 9, this replica (b) supports 1..1';
    const atB = b.errors.find((e) => e.code === 'version-mismatch');
    expect(atB?.message).toBe(expected);
    const atA = a.errors.find((e) => e.code === 'version-refused')!;
    expect(atA.message).toContain(expected);
    expect(atA.message).toMatch(/^handshake refused by b@127\.0\.0\.1:\d+/);
    expect(atA.peer).toBe('b');
    expect(a.logs.some((l) => l.level === 'error' && l.msg.includes(expected))).toBe(true);
    expect(b.logs.some((l) => l.level === 'error' && l.msg === expected)).toBe(true);
    expect(a.t.isConnected('b')).toBe(false);
    expect(b.got).toEqual([]);
    expect(b.t.stats().handshakesRefused).toBeGreaterThanOrEqual(1);
    // it keeps trying (the peer may be upgraded), with backoff
    await waitFor(() => a.t.stats().peers.b!.connectFailures >= 2, 'retries');
    expect(a.t.stats().peers.b!.queuedMessages).toBe(1);
  });

  it('overlapping ranges agree on the highest common version (rolling upgrade)', async () => {
    const dir: Record<string, PeerAddress> = {};
    const old = await mk('old', dir, { protocolVersions: { min: 1, max: 1 } });
    const mid = await mk('mid', dir, { protocolVersions: { min: 1, max: 2 } });
    const nu = await mk('new', dir, { protocolVersions: { min: 2, max: 3 } });
    for (const n of [old, mid, nu]) dir[n.t.selfIds[0]!] = { host: '127.0.0.1', port: n.port };
    mid.t.send(makeMessage('accept', 'mid', 'old'));
    mid.t.send(makeMessage('accept', 'mid', 'new'));
    old.t.send(makeMessage('accepted', 'old', 'mid'));
    nu.t.send(makeMessage('accepted', 'new', 'mid'));
    await waitFor(() => old.got.length === 1 && nu.got.length === 1 && mid.got.length === 2, 'all');
    expect(mid.t.stats().peers.old!.version).toBe(1);
    expect(mid.t.stats().peers.new!.version).toBe(2);
    expect(old.t.stats().peers.mid!.version).toBe(1);
    expect(nu.t.stats().peers.mid!.version).toBe(2);
    // old and new have nothing in common
    old.t.send(makeMessage('heartbeat', 'old', 'new'));
    await waitFor(() => old.errors.some((e) => e.code === 'version-refused'), 'refusal');
    expect(nu.errors.find((e) => e.code === 'version-mismatch')?.message).toBe(
      'peer old speaks protocol version 1, this replica (new) supports 2..3',
    );
  });

  it('refuses a dialler that asks for a replica this process does not host', async () => {
    const dir: Record<string, PeerAddress> = {};
    const b = await mk('b', dir);
    const a = await mk('a', dir);
    dir.c = { host: '127.0.0.1', port: b.port }; // misconfigured: c is not there
    a.t.send(makeMessage('prepare', 'a', 'c'));
    await waitFor(() => a.errors.some((e) => e.code === 'handshake-refused'), 'refusal');
    expect(a.errors.find((e) => e.code === 'handshake-refused')!.message).toContain(
      'a dialled replica c, but this process hosts b',
    );
    expect(b.got).toEqual([]);
  });

  it('rejects a bad protocolVersions option', async () => {
    await expect(() =>
      createTcpTransport({ self: 'x', peers: {}, protocolVersions: { min: 3, max: 2 } }),
    ).rejects.toThrow(/bad protocolVersions/);
  });
});

describe('timeouts', () => {
  it('a lookup that never answers and a peer that never answers the hello both end in a retry', async () => {
    const net = await import('node:net');
    // a listener that accepts and says nothing
    const accepted: import('node:net').Socket[] = [];
    const mute = net.createServer((s) => void accepted.push(s.on('error', () => {})));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    const port = (mute.address() as import('node:net').AddressInfo).port;
    try {
      const hang = await mk(
        'h',
        { never: { host: 'never.decree.test', port }, mute: { host: '127.0.0.1', port } },
        {
          lookup: () => new Promise<string>(() => {}),
          connectTimeoutMs: 100,
        },
      );
      hang.t.connect('never');
      hang.t.connect('mute');
      await waitFor(
        () =>
          (hang.t.stats().peers.never?.connectFailures ?? 0) >= 2 &&
          (hang.t.stats().peers.mute?.connectFailures ?? 0) >= 2,
        'retries',
      );
      expect(hang.errors.some((e) => e.peer === 'never' && /lookup timed out after 100 ms/.test(e.message))).toBe(true);
      expect(hang.errors.some((e) => e.peer === 'mute' && /no handshake within 100 ms/.test(e.message))).toBe(true);
      expect(hang.t.isConnected('mute')).toBe(false);
    } finally {
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => mute.close(() => r()));
    }
  });
});

describe('flapping peer', () => {
  it('a peer that accepts and drops every connection at once is retried with growing backoff', async () => {
    const net = await import('node:net');
    const { decodeHello, encodeWelcome, frames, STATUS_OK } = await import('../src/index.ts');
    let accepted = 0;
    const flappy = net.createServer((s) => {
      accepted++;
      s.on('error', () => {});
      s.once('data', (c: Buffer) => {
        decodeHello(c.subarray(4));
        s.end(frames([encodeWelcome({ status: STATUS_OK, version: 1, ids: ['f'] })]));
      });
    });
    await new Promise<void>((r) => flappy.listen(0, '127.0.0.1', () => r()));
    const port = (flappy.address() as import('node:net').AddressInfo).port;
    try {
      const a = await mk(
        'a',
        { f: { host: '127.0.0.1', port } },
        { backoff: { initialMs: 1, maxMs: 40, jitter: 0, resetAfterMs: 60_000 } },
      );
      a.t.connect('f');
      await waitFor(() => a.t.stats().peers.f!.connects >= 6, 'six short-lived connections');
      const p = a.t.stats().peers.f!;
      // every short-lived connection counts as a failure for the backoff: it does not start over
      expect(p.attempt).toBeGreaterThanOrEqual(5);
      expect(p.reconnects).toBeGreaterThanOrEqual(5);
      expect(accepted).toBeGreaterThanOrEqual(6);
    } finally {
      await new Promise<void>((r) => flappy.close(() => r()));
    }
  });
});
