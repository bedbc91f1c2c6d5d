import net from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMessage, encodeValue, type Accepted } from '@decree/protocol';
import { STATUS_OK, decodeHello, encodeWelcome, frame, frames, type PeerAddress } from '../src/index.ts';
import { makeMessage, node, tick, waitFor, wire, type Node } from './helpers.ts';
import { RawClient } from './raw.ts';

const open: Node[] = [];
const raws: RawClient[] = [];
afterEach(async () => {
  await Promise.all(raws.splice(0).map((r) => r.destroy()));
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});
async function mk(...args: Parameters<typeof node>): Promise<Node> {
  const n = await node(...args);
  open.push(n);
  return n;
}
function raw(port: number): RawClient {
  const r = new RawClient(port);
  raws.push(r);
  return r;
}

/** a and b connected; returns a function checking that a -> b still works */
async function pair(bExtra: Parameters<typeof node>[2] = {}) {
  const dir: Record<string, PeerAddress> = {};
  const b = await mk('b', dir, bExtra);
  const a = await mk('a', dir);
  dir.b = { host: '127.0.0.1', port: b.port };
  let n = 0;
  const stillServes = async () => {
    const m = makeMessage('accepted', 'a', 'b', `check-${n++}`);
    const before = b.got.length;
    a.t.send(m);
    await waitFor(() => b.got.length === before + 1, 'b still serving a');
    expect(wire(b.got[before]!)).toBe(wire(m));
  };
  await stillServes();
  return { a, b, stillServes };
}

describe('hostile and broken input', () => {
  it('garbage bytes close that connection only; the receiver keeps serving other peers', async () => {
    const { b, stillServes } = await pair();
    const r = raw(b.port);
    await r.ready();
    r.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await r.closedP;
    expect(b.t.stats().protocolErrors).toBe(1);
    expect(b.errors.map((e) => e.code)).toEqual(['protocol']);
    await stillServes();
    // random garbage, each on its own connection
    const blobs = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), { numRuns: 25, seed: 7 });
    for (const blob of blobs) {
      const g = raw(b.port);
      await g.ready();
      g.write(blob);
      g.socket.end();
      await g.closedP;
    }
    await stillServes();
    expect(b.t.stats().inboundAccepted).toBe(27);
  });

  it('a bad magic in an otherwise well-framed hello is refused', async () => {
    const { b, stillServes } = await pair();
    const r = raw(b.port);
    await r.ready();
    r.write(frame(Buffer.from('XXXX\u0001\u0000\u0001\u0000\u0001')));
    await r.closedP;
    expect(b.errors[0]!.message).toMatch(/bad magic/);
    await stillServes();
  });

  it('an oversized frame closes the connection, logged, not a crash', async () => {
    const { b, stillServes } = await pair({ maxFrameBytes: 1024 * 1024 });
    const r = raw(b.port);
    const w = await r.handshake(['x'], 'b');
    expect(w.status).toBe(STATUS_OK);
    expect(w.ids).toEqual(['b']);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(1024 * 1024 + 1);
    r.write(head);
    await r.closedP;
    expect(b.t.stats().protocolErrors).toBe(1);
    expect(
      b.logs.some((l) => l.level === 'error' && /frame of 1048577 bytes .* above the limit of 1048576/.test(l.msg)),
    ).toBe(true);
    await stillServes();
    // before the handshake the limit is much smaller
    const r2 = raw(b.port);
    await r2.ready();
    head.writeUInt32BE(0xffffffff);
    r2.write(head);
    await r2.closedP;
    expect(b.t.stats().protocolErrors).toBe(2);
    await stillServes();
  });

  it('frames that are not valid messages are counted and skipped; the connection goes on', async () => {
    const { b, stillServes } = await pair();
    const r = raw(b.port);
    await r.handshake(['x'], 'b');
    const good = makeMessage('decide', 'x', 'b');
    r.write(
      frames([
        Buffer.from([0xc1]),
        encodeValue({ type: 'zzz', ring: 'r', from: 'x', to: 'b' }),
        new Uint8Array(0),
        encodeMessage(good),
      ]),
    );
    await waitFor(() => b.got.some((m) => m.from === 'x'), 'the good message after the bad ones');
    expect(b.t.stats().decodeErrors).toBe(3);
    expect(b.errors.filter((e) => e.code === 'decode').length).toBe(3);
    expect(r.closed).toBe(false);
    expect(wire(b.got.find((m) => m.from === 'x')!)).toBe(wire(good));
    await stillServes();
  });

  it('random frames after a valid handshake never crash the receiver', async () => {
    const { b, stillServes } = await pair();
    const r = raw(b.port);
    await r.handshake(['x'], 'b');
    const blobs = fc.sample(fc.uint8Array({ maxLength: 200 }), { numRuns: 300, seed: 11 });
    r.write(frames(blobs));
    await waitFor(() => b.t.stats().framesIn >= 1 + blobs.length, 'all frames read');
    expect(b.t.stats().decodeErrors).toBe(blobs.length - b.got.filter((m) => m.from === 'x').length);
    expect(r.closed).toBe(false);
    await stillServes();
  });

  it('messages claiming another sender than the handshake named, or for another replica, are dropped', async () => {
    const { b } = await pair();
    const r = raw(b.port);
    await r.handshake(['x'], 'b');
    r.write(
      frames([
        encodeMessage(makeMessage('accept', 'spoof', 'b')),
        encodeMessage(makeMessage('accept', 'x', 'other')),
        encodeMessage(makeMessage('accept', 'x', 'b')),
      ]),
    );
    await waitFor(() => b.got.some((m) => m.from === 'x'), 'the good one');
    expect(b.got.filter((m) => m.from !== 'a').map((m) => `${m.from}>${m.to}`)).toEqual(['x>b']);
    expect(b.t.stats().misrouted).toBe(2);
  });

  it('a silent connection is closed after the handshake timeout', async () => {
    const { b, stillServes } = await pair({ handshakeTimeoutMs: 100 });
    const r = raw(b.port);
    await r.closedP;
    expect(b.errors.map((e) => e.message)).toEqual([expect.stringMatching(/no hello from .* within 100 ms/)]);
    await stillServes();
  });

  it('a receiver that throws is counted and the next message is delivered', async () => {
    const { a, b } = await pair();
    let n = 0;
    b.t.setReceiver((m) => {
      if (n++ === 0) throw new Error('boom');
      b.got.push(m);
    });
    const before = b.got.length;
    a.t.send(makeMessage('accept', 'a', 'b', 'x1'));
    a.t.send(makeMessage('accept', 'a', 'b', 'x2'));
    await waitFor(() => b.got.length === before + 1, 'second');
    expect(b.got.at(-1)!.ring).toBe('x2');
    expect(b.t.stats().receiverErrors).toBe(1);
    expect(b.errors.at(-1)!.message).toMatch(/receiver threw on accept from a: boom/);
  });

  it('a message larger than maxFrameBytes is not sent (the peer would refuse it)', async () => {
    const dir: Record<string, PeerAddress> = {};
    const b = await mk('b', dir);
    const a = await mk('a', dir, { maxFrameBytes: 1000 });
    dir.b = { host: '127.0.0.1', port: b.port };
    const big = { ...makeMessage('client-req', 'a', 'b'), cmds: [new Uint8Array(2000)] } as const;
    a.t.send(big);
    expect(a.t.stats().drops).toBe(1);
    expect(a.errors[0]!.code).toBe('encode');
  });
});

/** A server that completes the handshake and then never reads (until told to). */
async function stubbornPeer(id: string) {
  let received = 0;
  let sock: net.Socket | undefined;
  const server = net.createServer((s) => {
    sock = s;
    let buf = Buffer.alloc(0);
    let welcomed = false;
    s.on('data', (c: Buffer) => {
      received += c.length;
      if (welcomed) return;
      buf = Buffer.concat([buf, c]);
      if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) return;
      const hello = decodeHello(buf.subarray(4, 4 + buf.readUInt32BE(0)));
      expect(hello.to).toBe(id);
      s.write(frames([encodeWelcome({ status: STATUS_OK, version: 1, ids: [id] })]));
      welcomed = true;
      s.pause();
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    received: () => received,
    resume: () => sock?.resume(),
    close: () => new Promise<void>((r) => (sock?.destroy(), server.close(() => r()))),
  };
}

describe('back-pressure', () => {
  it(
    'with a peer that never reads, many MB sent keep the buffers ' +
      'bounded and drops grow; it drains when the peer reads',
    async () => {
      const peer = await stubbornPeer('slow');
      try {
        const maxQueuedBytes = 1024 * 1024;
        const maxWriteBytes = 256 * 1024;
        const a = await mk(
          'a',
          { slow: { host: '127.0.0.1', port: peer.port } },
          { maxQueuedBytes, maxQueuedMessages: 100_000, maxWriteBytes },
        );
        const cmd = new Uint8Array(6000).fill(7);
        const msg = {
          ...makeMessage('accept', 'a', 'slow'),
          value: { k: 'batch', origin: 'a', inc: 1, firstId: 1, cmds: [cmd] },
        } as const;
        await a.t.whenConnected('slow');
        let sent = 0;
        let maxQueued = 0;
        let maxSocket = 0;
        const target = 64 * 1024 * 1024;
        while (sent * 6000 < target) {
          for (let i = 0; i < 100; i++, sent++) a.t.send(msg);
          await tick();
          const p = a.t.stats().peers.slow!;
          maxQueued = Math.max(maxQueued, p.queuedBytes);
          maxSocket = Math.max(maxSocket, p.socketBufferedBytes);
        }
        const s = a.t.stats();
        const p = s.peers.slow!;
        expect(maxQueued).toBeLessThanOrEqual(maxQueuedBytes);
        expect(maxSocket).toBeLessThanOrEqual(maxWriteBytes + 64 * 1024);
        expect(p.drops).toBeGreaterThan(sent / 2); // most of 64 MB could not go anywhere
        expect(p.framesOut * 6000).toBeLessThan(32 * 1024 * 1024); // the kernel took only a few MB
        expect(p.drops + p.framesOut + p.queuedMessages).toBe(sent); // every message accounted for
        expect(s.drops).toBe(p.drops);
        if (process.env.DEBUG_BP) console.log({ sent, maxQueued, maxSocket, p });
        expect(a.logs.filter((l) => /outbound buffer to slow is full/.test(l.msg)).length).toBeLessThanOrEqual(3); // rate-limited

        // the peer starts reading: the buffer drains and every byte written arrives
        peer.resume();
        await waitFor(() => a.t.stats().peers.slow!.queuedMessages === 0, 'queue drained');
        const hello = 4 + 9; // frame header + fixed hello; the body is small
        await waitFor(() => peer.received() >= a.t.stats().peers.slow!.bytesOut + hello, 'all written bytes received');
        expect(a.t.isConnected('slow')).toBe(true);
      } finally {
        await peer.close();
      }
    },
  );
});

describe('coalescing', () => {
  it('1,000 small sends in one tick arrive in order in a handful of socket writes', async () => {
    const { a, b } = await pair();
    const w0 = a.t.stats().socketWrites;
    const before = b.got.length;
    for (let i = 0; i < 1000; i++) a.t.send({ ...(makeMessage('accepted', 'a', 'b') as Accepted), slot: i });
    await waitFor(() => b.got.length === before + 1000, '1000 messages');
    const slots = b.got.slice(before).map((m) => (m.type === 'accepted' ? m.slot : -1));
    expect(slots).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const writes = a.t.stats().socketWrites - w0;
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThanOrEqual(2);
    expect(a.t.stats().framesOut).toBe(1001);
  });

  it('sends spread over microtasks of one macrotask share a write too', async () => {
    const { a, b } = await pair();
    const w0 = a.t.stats().socketWrites;
    const before = b.got.length;
    for (let i = 0; i < 20; i++) queueMicrotask(() => a.t.send(makeMessage('heartbeat', 'a', 'b', `m${i}`)));
    await waitFor(() => b.got.length === before + 20, '20 messages');
    expect(a.t.stats().socketWrites - w0).toBe(1);
  });

  it('what a task sends is written at its end, not on the next turn of the event loop', async () => {
    const { a, b } = await pair();
    const w0 = a.t.stats().socketWrites;
    const before = b.got.length;
    a.t.send(makeMessage('heartbeat', 'a', 'b', 'x'));
    a.t.send(makeMessage('heartbeat', 'a', 'b', 'y'));
    expect(a.t.stats().socketWrites - w0).toBe(0); // not synchronous: a task's sends share a write
    await null; // a microtask queued after the sends: the end of this task
    expect(a.t.stats().socketWrites - w0).toBe(1);
    await waitFor(() => b.got.length === before + 2, '2 messages');
  });
});

describe('close', () => {
  it('closes server and sockets, resolves, frees the port; later sends are dropped', async () => {
    const dir: Record<string, PeerAddress> = {};
    const b = await mk('b', dir);
    const a = await mk('a', dir);
    dir.b = { host: '127.0.0.1', port: b.port };
    dir.a = { host: '127.0.0.1', port: a.port };
    a.t.send(makeMessage('accept', 'a', 'b'));
    b.t.send(makeMessage('accept', 'b', 'a'));
    await waitFor(() => a.got.length === 1 && b.got.length === 1, 'both');
    // a raw peer that never reads does not hold close() up
    const r = raw(a.port);
    await r.handshake(['z'], 'a');
    r.socket.pause();
    const p1 = a.t.close();
    expect(a.t.close()).toBe(p1);
    await p1;
    await r.closedP;
    a.t.send(makeMessage('accept', 'a', 'b'));
    expect(a.t.stats().drops).toBe(1);
    expect(a.t.isConnected('b')).toBe(false);
    await waitFor(() => !b.t.isConnected('a'), 'b sees a gone');
    // the port is free again
    const again = await mk('a', dir, { listen: { host: '127.0.0.1', port: a.port } });
    expect(again.port).toBe(a.port);
  });
});
