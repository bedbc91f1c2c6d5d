import { afterEach, describe, expect, it } from 'vitest';
import { MESSAGE_TYPES, type Message } from '@decree/protocol';
import { createTcpTransport, type PeerAddress } from '../src/index.ts';
import { makeMessage, node, waitFor, wire, byLane, type Node } from './helpers.ts';

const open: Node[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});
async function mk(...args: Parameters<typeof node>): Promise<Node> {
  const n = await node(...args);
  open.push(n);
  return n;
}

describe('exchange', () => {
  it(
    'two transports exchange every message type in both ' + 'directions, intact and in order within each lane',
    async () => {
      const dir: Record<string, PeerAddress> = {};
      const a = await mk('a', dir);
      const b = await mk('b', dir);
      dir.a = { host: '127.0.0.1', port: a.port };
      dir.b = { host: '127.0.0.1', port: b.port };
      const ab = MESSAGE_TYPES.map((t) => makeMessage(t, 'a', 'b'));
      const ba = MESSAGE_TYPES.map((t) => makeMessage(t, 'b', 'a'));
      for (const m of ab) a.t.send(m);
      for (const m of ba) b.t.send(m);
      await waitFor(() => a.got.length === ba.length && b.got.length === ab.length, 'all messages');
      expect(byLane(b.got)).toEqual(byLane(ab));
      expect(byLane(a.got)).toEqual(byLane(ba));
      expect(b.got.map((m) => m.type).sort()).toEqual([...MESSAGE_TYPES].sort());
      expect(a.t.isConnected('b')).toBe(true);
      expect(b.t.isConnected('a')).toBe(true);
      const sa = a.t.stats();
      expect(sa.framesOut).toBe(ab.length);
      expect(sa.framesIn).toBe(ba.length);
      expect(sa.drops).toBe(0);
      expect(sa.decodeErrors).toBe(0);
      expect(sa.peers.b!.version).toBe(1);
      expect(b.t.stats().bytesIn).toBeGreaterThan(0);
      expect([...a.errors, ...b.errors]).toEqual([]);
    },
  );

  it('three transports: every pair exchanges every type', async () => {
    const dir: Record<string, PeerAddress> = {};
    const ids = ['r1', 'r2', 'r3'];
    const nodes = await Promise.all(ids.map((id) => mk(id, dir)));
    ids.forEach((id, i) => (dir[id] = { host: '127.0.0.1', port: nodes[i]!.port }));
    const sent = new Map<string, string[]>(ids.map((id) => [id, []]));
    const sentMsgs = new Map<string, Message[]>(ids.map((id) => [id, []]));
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        if (i === j) continue;
        for (const t of MESSAGE_TYPES) {
          const m = makeMessage(t, ids[i]!, ids[j]!, `ring-${i}${j}`);
          nodes[i]!.t.send(m);
          sent.get(ids[j]!)!.push(wire(m));
          sentMsgs.get(ids[j]!)!.push(m);
        }
      }
    await waitFor(() => nodes.every((n) => n.got.length === 2 * MESSAGE_TYPES.length), 'all pairs');
    for (let j = 0; j < 3; j++) {
      const got = nodes[j]!.got.map(wire);
      expect(got.slice().sort()).toEqual(sent.get(ids[j]!)!.slice().sort());
      // per sender and lane, order is kept
      for (const from of ids) {
        const fromGot = byLane(nodes[j]!.got.filter((m) => m.from === from));
        const fromSent = byLane(sentMsgs.get(ids[j]!)!.filter((m) => m.from === from));
        expect(fromGot).toEqual(fromSent);
      }
    }
    for (const n of nodes)
      expect(Object.keys(n.t.stats().peers).sort()).toEqual(ids.filter((id) => id !== n.t.selfIds[0]));
  });

  it('many rings share one connection per pair', async () => {
    const dir: Record<string, PeerAddress> = {};
    const a = await mk('a', dir);
    const b = await mk('b', dir);
    dir.b = { host: '127.0.0.1', port: b.port };
    const sent: Message[] = [];
    for (let r = 0; r < 50; r++)
      for (let k = 0; k < 4; k++) {
        const m = makeMessage(MESSAGE_TYPES[(r + k) % MESSAGE_TYPES.length]!, 'a', 'b', `ring-${r}`);
        sent.push(m);
        a.t.send(m);
      }
    await waitFor(() => b.got.length === sent.length, 'all rings');
    expect(byLane(b.got)).toEqual(byLane(sent));
    expect(new Set(b.got.map((m) => m.ring)).size).toBe(50);
    expect(b.t.stats().inboundAccepted).toBe(1);
    expect(a.t.stats().peers.b!.connects).toBe(1);
  });

  it('a process hosting several replicas sends from each and receives for each', async () => {
    const dir: Record<string, PeerAddress> = {};
    const p = await mk(['p1', 'p2'], dir);
    const q = await mk('q', dir);
    dir.p1 = { host: '127.0.0.1', port: p.port };
    dir.p2 = { host: '127.0.0.1', port: p.port };
    dir.q = { host: '127.0.0.1', port: q.port };
    p.t.send(makeMessage('accept', 'p1', 'q'));
    p.t.send(makeMessage('accept', 'p2', 'q'));
    q.t.send(makeMessage('accepted', 'q', 'p1'));
    q.t.send(makeMessage('accepted', 'q', 'p2'));
    await waitFor(() => p.got.length === 2 && q.got.length === 2, 'both');
    expect(q.got.map((m) => m.from)).toEqual(['p1', 'p2']);
    expect(p.got.map((m) => m.to)).toEqual(['p1', 'p2']);
    expect(q.t.stats().inboundAccepted).toBe(1); // one connection from p, shared by p1 and p2
    expect(p.t.stats().inboundAccepted).toBe(2); // q dials p1 and p2: one link per peer replica
    expect(Object.keys(p.t.stats().peers)).toEqual(['q']);
    // a message between replicas of the same process is delivered locally
    p.t.send(makeMessage('heartbeat', 'p1', 'p2'));
    await waitFor(() => p.got.length === 3, 'local');
    expect(p.got[2]!.type).toBe('heartbeat');
  });

  it('a dial-only process (no listen, no address) gets replies over its own connection', async () => {
    const dir: Record<string, PeerAddress> = {};
    const server = await mk('s', dir);
    dir.s = { host: '127.0.0.1', port: server.port };
    const got: Message[] = [];
    const client = await createTcpTransport({ self: 'client-7', peers: dir, logger: false });
    try {
      client.setReceiver((m) => got.push(m));
      client.send(makeMessage('client-req', 'client-7', 's'));
      await waitFor(() => server.got.length === 1, 'request');
      server.t.send(makeMessage('client-rep', 's', 'client-7'));
      await waitFor(() => got.length === 1, 'reply');
      expect(got[0]!.type).toBe('client-rep');
      expect(server.t.stats().peers['client-7']!.dials).toBe(false);
      // to an unknown replica with no connection: dropped and counted, never thrown
      server.t.send(makeMessage('client-rep', 's', 'nobody'));
      expect(server.t.stats().unroutable).toBe(1);
      expect(server.t.stats().drops).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('refuses to send a message from a replica it does not host, and drops receipts not for it', async () => {
    const dir: Record<string, PeerAddress> = {};
    const a = await mk('a', dir);
    const b = await mk('b', dir);
    dir.b = { host: '127.0.0.1', port: b.port };
    a.t.send(makeMessage('accept', 'zz', 'b'));
    expect(a.t.stats().misrouted).toBe(1);
    expect(a.errors.map((e) => e.code)).toEqual(['misrouted']);
    a.t.send(makeMessage('accept', 'a', 'b'));
    await waitFor(() => b.got.length === 1, 'the good one');
    expect(b.got[0]!.from).toBe('a');
  });

  it('forget() drops a link and its queue; counters survive; a later send dials again', async () => {
    const dir: Record<string, PeerAddress> = {};
    const a = await mk('a', dir);
    const b = await mk('b', dir);
    dir.b = { host: '127.0.0.1', port: b.port };
    a.t.send(makeMessage('accept', 'a', 'b'));
    await waitFor(() => b.got.length === 1, 'first');
    a.t.forget('b');
    expect(a.t.stats().peers.b).toBeUndefined();
    expect(a.t.isConnected('b')).toBe(false);
    expect(a.t.stats().framesOut).toBe(1);
    a.t.send(makeMessage('accept', 'a', 'b', 'again'));
    await waitFor(() => b.got.length === 2, 'second');
    expect(b.got[1]!.ring).toBe('again');
    expect(a.t.stats().framesOut).toBe(2);
    expect(b.t.stats().inboundAccepted).toBe(2);
  });
});

describe('lanes: control ahead of bulk', () => {
  it('a heartbeat sent after a burst of large snapshot chunks arrives before the last of them', async () => {
    const dir: Record<string, PeerAddress> = {};
    const a = await mk('a', dir);
    const b = await mk('b', dir);
    dir.b = { host: '127.0.0.1', port: b.port };
    await a.t.whenConnected('b');
    const chunk = (i: number): Message => ({
      type: 'snap-chunk',
      ring: 'r',
      from: 'a',
      to: 'b',
      xfer: 1,
      slot: 9,
      members: ['a', 'b'],
      length: 0,
      crc: 0,
      index: i,
      count: 6,
      chunkCrc: 0,
      data: new Uint8Array(1 << 20),
    });
    for (let i = 0; i < 6; i++) a.t.send(chunk(i));
    a.t.send({ type: 'heartbeat', ring: 'r', from: 'a', to: 'b', ballot: { round: 1, leader: 'a' }, decidedUpTo: 0 });
    await waitFor(() => b.got.length === 7, 'all seven');
    const at = b.got.findIndex((m) => m.type === 'heartbeat');
    expect(at).toBeLessThan(6); // not behind every chunk: the control lane went first
    expect(b.got.filter((m) => m.type === 'snap-chunk').map((m) => (m as { index: number }).index)).toEqual([
      0, 1, 2, 3, 4, 5,
    ]);
  });

  it('a full bulk lane drops bulk messages (counted per lane) while control messages still go', async () => {
    const dir: Record<string, PeerAddress> = {};
    const a = await mk('a', dir, { maxBulkQueuedBytes: 3 << 20 });
    const b = await mk('b', dir);
    dir.b = { host: '127.0.0.1', port: b.port }; // not connected yet: everything queues
    for (let i = 0; i < 6; i++)
      a.t.send({
        type: 'snap-chunk',
        ring: 'r',
        from: 'a',
        to: 'b',
        xfer: 1,
        slot: 9,
        members: [],
        length: 0,
        crc: 0,
        index: i,
        count: 6,
        chunkCrc: 0,
        data: new Uint8Array(1 << 20),
      });
    for (let i = 0; i < 50; i++)
      a.t.send({ type: 'decide', ring: 'r', from: 'a', to: 'b', ballot: { round: 1, leader: 'a' }, upTo: i });
    const st = a.t.stats();
    expect(st.bulkDrops).toBe(4); // 1 MiB + framing each: two fit the 3 MiB bound
    expect(st.controlDrops).toBe(0);
    await waitFor(() => b.got.filter((m) => m.type === 'decide').length === 50, 'every decide');
  });
});
