import { afterEach, describe, expect, it } from 'vitest';
import type { PeerAddress, TcpTransportOptions } from '../src/index.ts';
import { makeMessage, node, waitFor, type Node } from './helpers.ts';
import { Intruder, acceptMsg, busAcceptor, busProposer } from './security-helpers.ts';

const open: Node[] = [];
const intruders: Intruder[] = [];
const stops: (() => void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) s();
  await Promise.all(intruders.splice(0).map((r) => r.destroy()));
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});

const SECRET = 'cluster-secret-1';
const MEMBERS = ['r1', 'r2', 'r3'];
async function mk(
  self: string,
  dir: Record<string, PeerAddress>,
  extra: Partial<TcpTransportOptions> = {},
): Promise<Node> {
  const n = await node(self, dir, { secret: SECRET, members: MEMBERS, ...extra });
  open.push(n);
  dir[self] = { host: '127.0.0.1', port: n.port };
  return n;
}
const settle = () => new Promise((r) => setTimeout(r, 100));

describe('shared secret (HMAC handshake) and membership', () => {
  it('a replica with a wrong secret cannot join or inject; the good peer keeps working', async () => {
    const dir: Record<string, PeerAddress> = {};
    const r1 = await mk('r1', dir);
    const r3 = await mk('r3', dir);
    const bad = await node('r2', { r1: dir.r1! }, { secret: 'not-the-secret', members: MEMBERS, logger: false });
    open.push(bad);
    dir.r2 = { host: '127.0.0.1', port: bad.port };
    bad.t.send(acceptMsg('r2', 'r1', 1000, 1)); // bad dials r1
    r1.t.send(makeMessage('prepare', 'r1', 'r2')); // r1 dials bad
    const raw = new Intruder(r1.port);
    intruders.push(raw);
    await raw.handshake(['r2'], 'r1', 'not-the-secret');
    raw.send(acceptMsg('r2', 'r1', 1000, 2));
    await waitFor(() => r1.t.stats().authFailures >= 3, 'three auth failures at r1');
    r3.t.send(makeMessage('accept', 'r3', 'r1'));
    await waitFor(() => r1.got.length === 1, 'the good one');
    await raw.closedP;
    await settle();
    expect(r1.got.map((m) => m.from)).toEqual(['r3']);
    expect(bad.got).toEqual([]);
    expect(r1.t.stats().framesIn).toBe(1);
  });

  it('a holder of the secret naming a non-member id is refused', async () => {
    const dir: Record<string, PeerAddress> = {};
    const r1 = await mk('r1', dir);
    const raw = new Intruder(r1.port);
    intruders.push(raw);
    const w = await raw.handshake(['r9'], 'r1', SECRET);
    raw.send(acceptMsg('r9', 'r1', 1000, 1));
    await raw.closedP;
    expect(w?.status).toBe(2);
    expect(w?.error).toBe('refused r9: r9 is not a member of this cluster');
    expect(r1.got).toEqual([]);
    expect(r1.t.stats().notMembers).toBe(1);
    expect(r1.t.stats().authFailures).toBe(1);
    // a transport dialling a non-member listener refuses it too
    const r9 = await node('r9', {}, { secret: SECRET, logger: false });
    open.push(r9);
    const r2 = await mk(
      'r2',
      { ...dir, r9: { host: '127.0.0.1', port: r9.port } },
      { members: (id) => id !== 'r9', peers: { r9: { host: '127.0.0.1', port: r9.port } } },
    );
    r2.t.send(makeMessage('prepare', 'r2', 'r9'));
    await waitFor(() => r2.errors.some((e) => e.code === 'auth' && /not a member/.test(e.message)), 'r2 refuses r9');
    expect(r2.t.isConnected('r9')).toBe(false);
  });

  it('over a secret-authenticated connection, a spoofed `from` is dropped and counted', async () => {
    const dir: Record<string, PeerAddress> = {};
    const r1 = await mk('r1', dir);
    const raw = new Intruder(r1.port);
    intruders.push(raw);
    const w = await raw.handshake(['r3'], 'r1', SECRET);
    expect(w?.status).toBe(0);
    raw.send(acceptMsg('r2', 'r1', 1000, 1), acceptMsg('r3', 'r1', 2, 1));
    await waitFor(() => r1.got.length === 1, 'the honest one');
    expect(r1.got[0]!.from).toBe('r3');
    expect(r1.t.stats().spoofed).toBe(1);
  });

  it(
    'Bus + real acceptor: forged high-ballot Accepts (wrong secret, ' +
      'no proof, non-member, spoofed from) never move its promise',
    async () => {
      const dir: Record<string, PeerAddress> = {};
      const t2 = await mk('r2', dir);
      const t1 = await mk('r1', dir);
      const acc = busAcceptor('r2', t2.t);
      stops.push(acc.stop);
      const prop = busProposer('r1', t1.t);
      prop.bus.send(acceptMsg('r1', 'r2', 5, 1));
      await waitFor(() => prop.got.some((m) => m.type === 'accepted'), 'first accepted');
      const attacks = [new Intruder(t2.port), new Intruder(t2.port), new Intruder(t2.port), new Intruder(t2.port)];
      intruders.push(...attacks);
      await attacks[0]!.handshake(['r3'], 'r2', 'wrong-secret');
      await attacks[1]!.handshake(['r3'], 'r2'); // no proof at all: the accept stands where the proof should be
      await attacks[2]!.handshake(['r9'], 'r2', SECRET);
      await attacks[3]!.handshake(['r3'], 'r2', SECRET);
      attacks[0]!.send(acceptMsg('r3', 'r2', 1000, 2));
      attacks[1]!.send(acceptMsg('r3', 'r2', 1000, 2));
      attacks[2]!.send(acceptMsg('r9', 'r2', 1000, 2));
      attacks[3]!.send(acceptMsg('r1', 'r2', 1000, 2), acceptMsg('r9', 'r2', 1000, 2, 'r9'));
      await Promise.all(attacks.slice(0, 3).map((a) => a.closedP));
      await waitFor(() => t2.t.stats().spoofed === 2, 'the spoofs dropped');
      prop.bus.send(acceptMsg('r1', 'r2', 5, 2));
      await waitFor(() => prop.got.filter((m) => m.type === 'accepted').length === 2, 'second accepted');
      expect(prop.got.map((m) => m.type)).toEqual(['accepted', 'accepted']);
      expect(acc.promised()).toEqual({ round: 5, leader: 'r1' });
      expect(acc.seen.map((m) => m.from)).toEqual(['r1', 'r1']);
      expect(t2.t.stats().authFailures).toBe(3);
      expect(t2.t.stats().notMembers).toBe(1);
    },
  );
});
