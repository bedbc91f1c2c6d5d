/**
 * The bus Transport over shm rings: two replicas in one process, a full ring's bounded queue, bad
 * frames, two processes exchanging messages, and the RDMA transport failing clearly without a device.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Bus, realEnv } from '@decree/bus';
import { encodeMessage, type Message } from '@decree/protocol';
import { RdmaNotBuiltError, createRdmaEndpoint, loadRdmaAddonFrom, openShmRing } from '@decree/rdma-transport';
import {
  NO_RDMA_DEVICE,
  ShmTransportError,
  createRdmaSideChannel,
  createRdmaTransport,
  createShmTransport,
  listRdmaDevices,
  ringFileName,
  type ShmTransport,
} from '../src/index.ts';
import { sleep, tempDir, waitFor } from './helpers.ts';
import { samples } from '../../protocol/test/arbitraries.ts';

const tmp = tempDir('shm');
const open: ShmTransport[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(open.map((t) => t.close()));
  tmp.remove();
});

const hb = (from: string, to: string, n: number, payload = new Uint8Array(0)): Message => ({
  type: 'heartbeat-ack',
  ring: 'default',
  from,
  to,
  ballot: { round: 3, leader: from },
  appliedUpTo: n,
  payload,
});

function pair(cluster: string, extra: Partial<Parameters<typeof createShmTransport>[0]> = {}) {
  const a = createShmTransport({ self: 'a', peers: ['a', 'b'], cluster, dir: tmp.dir, logger: false, ...extra });
  const b = createShmTransport({ self: 'b', peers: ['a', 'b'], cluster, dir: tmp.dir, logger: false, ...extra });
  open.push(a, b);
  return { a, b };
}

describe('ShmTransport', () => {
  it('names one ring per directed pair, distinct across clusters and ids', () => {
    const names = new Set([
      ringFileName('c', 'a', 'b'),
      ringFileName('c', 'b', 'a'),
      ringFileName('c2', 'a', 'b'),
      ringFileName('c/x', 'a', 'b'),
      ringFileName('c_x', 'a', 'b'),
    ]);
    expect(names.size).toBe(5);
    expect(ringFileName('c', 'a', 'b')).toMatch(/^decree-c-a-to-b-[0-9a-f]{8}\.ring$/);
  });

  it('carries messages both ways, in order, decoded; isConnected follows the peer', async () => {
    const { a, b } = pair('both');
    const atB: Message[] = [];
    const atA: Message[] = [];
    b.setReceiver((m) => atB.push(m));
    a.setReceiver((m) => atA.push(m));
    expect(existsSync(b.ringPath('a', 'b'))).toBe(true);
    for (let i = 0; i < 500; i++) a.send(hb('a', 'b', i, new Uint8Array(i % 200).fill(i & 0xff)));
    b.send({ type: 'prepare', ring: 'r9', from: 'b', to: 'a', ballot: { round: 9, leader: 'b' }, fromSlot: 17 });
    await waitFor('500 messages at b and 1 at a', () => atB.length === 500 && atA.length === 1);
    atB.forEach((m, i) => {
      expect(m.type).toBe('heartbeat-ack');
      if (m.type === 'heartbeat-ack') {
        expect(m.appliedUpTo).toBe(i);
        expect(m.payload?.length ?? 0).toBe(i % 200);
      }
    });
    expect(atA[0]).toMatchObject({ type: 'prepare', ring: 'r9', fromSlot: 17, ballot: { round: 9, leader: 'b' } });
    await waitFor('a sees b connected', () => a.isConnected('b'));
    expect(a.stats().peers.b!.sent).toBe(500);
    expect(b.stats().peers.a!.in!.frames).toBe(500);
    await b.close();
    await waitFor('a sees b gone', () => !a.isConnected('b'), 5000);
    expect(existsSync(b.ringPath('a', 'b'))).toBe(false); // the receiver removes its rings
  });

  it('a receiver that stops and comes back: the writer reopens its ring and what waited arrives', async () => {
    const a = createShmTransport({
      self: 'a',
      peers: ['a', 'b'],
      cluster: 'restart',
      dir: tmp.dir,
      logger: false,
      checkEveryMs: 20,
    });
    open.push(a);
    let b = createShmTransport({
      self: 'b',
      peers: ['a', 'b'],
      cluster: 'restart',
      dir: tmp.dir,
      logger: false,
      checkEveryMs: 20,
    });
    const got: number[] = [];
    b.setReceiver((m) => m.type === 'heartbeat-ack' && got.push(m.appliedUpTo));
    a.send(hb('a', 'b', 1));
    await waitFor('first', () => got.length === 1);
    await b.close(); // removes its rings
    await waitFor('a notices', () => !a.isConnected('b') && a.stats().peers.b!.reopens >= 1, 5000);
    for (let i = 2; i <= 10; i++) a.send(hb('a', 'b', i));
    await sleep(50);
    expect(a.stats().peers.b!.queuedMessages).toBe(9); // no ring to write: they wait (bounded)
    b = createShmTransport({
      self: 'b',
      peers: ['a', 'b'],
      cluster: 'restart',
      dir: tmp.dir,
      logger: false,
      checkEveryMs: 20,
    });
    open.push(b);
    b.setReceiver((m) => m.type === 'heartbeat-ack' && got.push(m.appliedUpTo));
    await waitFor('the queued ones', () => got.length === 10, 10_000);
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await waitFor('a connected again', () => a.isConnected('b'), 5000);
  });

  it('works under a Bus: a message to a remote replica arrives at its handler', async () => {
    const { a, b } = pair('bus');
    const busA = new Bus(realEnv(), a);
    const busB = new Bus(realEnv(), b);
    const got: Message[] = [];
    busB.register('default', 'b', 'elector', (m) => got.push(m));
    busA.send(hb('a', 'b', 42));
    await waitFor('delivery through the bus', () => got.length === 1);
    expect(got[0]).toMatchObject({ type: 'heartbeat-ack', appliedUpTo: 42 });
    await busA.close();
    await busB.close();
  });

  it('a full ring queues boundedly and delivers everything once the receiver drains', async () => {
    const { a, b } = pair('full', { capacity: 4096 });
    const got: number[] = [];
    b.setReceiver((m) => m.type === 'heartbeat-ack' && got.push(m.appliedUpTo));
    // ~160 KB in one turn through a 4 KiB ring: most of it waits in a's queue
    for (let i = 0; i < 1000; i++) a.send(hb('a', 'b', i, new Uint8Array(100)));
    expect(a.stats().peers.b!.queuedMessages).toBeGreaterThan(900);
    await waitFor('all 1000 through a 4 KiB ring', () => got.length === 1000, 30_000);
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(a.stats().peers.b!.full).toBeGreaterThan(0);
    expect(a.stats().peers.b!.drops).toBe(0);
  });

  it('drops beyond the queue bound when the peer never appears, and never throws', async () => {
    const a = createShmTransport({
      self: 'a',
      peers: ['a', 'ghost'],
      cluster: 'bound',
      dir: tmp.dir,
      logger: false,
      maxQueuedMessages: 100,
    });
    open.push(a);
    for (let i = 0; i < 250; i++) a.send(hb('a', 'ghost', i));
    await sleep(20);
    const s = a.stats().peers.ghost!;
    expect(s.queuedMessages).toBe(100);
    expect(s.drops).toBe(150);
    expect(a.isConnected('ghost')).toBe(false);
    const errs: ShmTransportError[] = [];
    const c = createShmTransport({
      self: 'c',
      peers: ['c'],
      cluster: 'bound',
      dir: tmp.dir,
      onError: (e) => errs.push(e),
    });
    open.push(c);
    c.send(hb('c', 'nobody', 1));
    expect(errs[0]?.code).toBe('misrouted');
  });

  it('two lanes per peer (PeerQueue): each bounded, its own drops, control handed over first', async () => {
    const chunk = (i: number): Message => ({
      ...samples['snap-chunk'],
      ring: 'default',
      from: 'a',
      to: 'b',
      index: i,
    });
    const a = createShmTransport({
      self: 'a',
      peers: ['a', 'b'],
      cluster: 'lanes',
      dir: tmp.dir,
      logger: false,
      checkEveryMs: 20,
      maxQueuedMessages: 4,
      maxBulkQueuedBytes: 1 << 20,
    });
    open.push(a);
    // b is not there yet: everything waits in a's lanes, each lane dropping on its own
    for (let i = 0; i < 6; i++) a.send(chunk(i));
    for (let i = 0; i < 6; i++) a.send(hb('a', 'b', i));
    await sleep(20);
    expect(a.stats().peers.b).toMatchObject({ queuedMessages: 8, controlDrops: 2, bulkDrops: 2, drops: 4 });
    expect(a.stats().peers.b!.bulkQueuedBytes).toBeGreaterThan(0);
    const b = createShmTransport({ self: 'b', peers: ['a', 'b'], cluster: 'lanes', dir: tmp.dir, logger: false });
    open.push(b);
    const got: string[] = [];
    b.setReceiver((m) => {
      if (m.type === 'heartbeat-ack') got.push(`hb${m.appliedUpTo}`);
      else if (m.type === 'snap-chunk') got.push(`chunk${m.index}`);
    });
    await waitFor('what waited', () => got.length === 8, 10_000);
    expect(got).toEqual(['hb0', 'hb1', 'hb2', 'hb3', 'chunk0', 'chunk1', 'chunk2', 'chunk3']);
  });

  it('a bad frame in the ring is counted and skipped; later messages arrive', async () => {
    const errs: ShmTransportError[] = [];
    const b = createShmTransport({
      self: 'b',
      peers: ['a', 'b'],
      cluster: 'bad',
      dir: tmp.dir,
      onError: (e) => errs.push(e),
    });
    open.push(b);
    const got: Message[] = [];
    b.setReceiver((m) => got.push(m));
    const raw = openShmRing(b.ringPath('a', 'b'));
    // three undecodable frames, and a valid message on a's ring that claims another sender
    raw.sendMany([
      Buffer.from([0xc1, 0x00]),
      Buffer.from('not msgpack at all'),
      Buffer.alloc(0),
      encodeMessage(hb('mallory', 'b', 9)),
    ]);
    raw.close();
    const a = createShmTransport({ self: 'a', peers: ['a', 'b'], cluster: 'bad', dir: tmp.dir, logger: false });
    open.push(a);
    a.send(hb('a', 'b', 7));
    await waitFor('the good message', () => got.length === 1);
    expect(b.stats().decodeErrors).toBe(3);
    expect(errs.filter((e) => e.code === 'decode').length).toBe(3);
    expect(b.stats().misrouted).toBe(1);
    expect(errs.find((e) => e.code === 'misrouted')!.message).toBe(
      'a heartbeat-ack from mallory arrived on the ring from a: dropped',
    );
    expect(got.map((m) => m.from)).toEqual(['a']);
  });

  it('two processes exchange messages through their rings', async () => {
    const me = createShmTransport({ self: 'p1', peers: ['p1', 'p2'], cluster: 'proc', dir: tmp.dir, logger: false });
    open.push(me);
    const echoes: Message[] = [];
    me.setReceiver((m) => echoes.push(m));
    const here = path.dirname(fileURLToPath(import.meta.url));
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', path.join(here, 'echo-peer.ts'), tmp.dir, 'proc', 'p2', 'p1'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.once('exit', (c) => reject(new Error(`echo peer exited ${c}`)));
    });
    await waitFor('p2 connected', () => me.isConnected('p2'));
    for (let i = 0; i < 300; i++) me.send(hb('p1', 'p2', i, new Uint8Array(i % 2 ? 6000 : 100).fill(i & 0xff)));
    await waitFor('300 echoes', () => echoes.length === 300, 30_000);
    echoes.forEach((m, i) => {
      expect(m).toMatchObject({ type: 'heartbeat-ack', from: 'p2', to: 'p1', appliedUpTo: i });
      if (m.type === 'heartbeat-ack') expect(m.payload!.length).toBe(i % 2 ? 6000 : 100);
    });
    child.kill('SIGKILL');
    await waitFor('p2 seen dead', () => !me.isConnected('p2'), 5000);
  });
});

describe('RDMA backend', () => {
  it('a missing addon build gives a clear error, not a crash', () => {
    expect(() => loadRdmaAddonFrom('/nonexistent/rdma_transport.node')).toThrow(RdmaNotBuiltError);
    expect(() => loadRdmaAddonFrom('/nonexistent/rdma_transport.node')).toThrow(/rdma-transport addon not built/);
  });
  it('compiles against libibverbs; listRdmaDevices() returns [] here', () => {
    expect(listRdmaDevices()).toEqual([]);
  });
  it('creating an endpoint or a transport throws the clear error', async () => {
    expect(() => createRdmaEndpoint({ role: 'reader' })).toThrow(NO_RDMA_DEVICE);
    expect(() => createRdmaEndpoint({ role: 'writer' })).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    const exchange = createRdmaSideChannel({ self: 'a', listen: { port: 0 }, peers: {}, logger: false });
    await expect(createRdmaTransport({ self: 'a', peers: ['a', 'b'], exchange })).rejects.toThrow(
      'no RDMA device found (ibv_get_device_list returned 0 devices)',
    );
    expect(() => exchange.address()).toThrow(/not listening/); // device discovery comes first: no side channel opened
  });
});
