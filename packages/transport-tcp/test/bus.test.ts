import { afterEach, describe, expect, it } from 'vitest';
import { Bus, realEnv } from '@decree/bus';
import type { Message } from '@decree/protocol';
import type { PeerAddress } from '../src/index.ts';
import { makeMessage, node, waitFor, type Node } from './helpers.ts';

const open: Node[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});

describe('with the bus', () => {
  it('routes role to role across two processes, several rings over one connection', async () => {
    const dir: Record<string, PeerAddress> = {};
    const n1 = await node('r1', dir);
    const n2 = await node('r2', dir);
    open.push(n1, n2);
    dir.r1 = { host: '127.0.0.1', port: n1.port };
    dir.r2 = { host: '127.0.0.1', port: n2.port };
    const bus1 = new Bus(realEnv(), n1.t);
    const bus2 = new Bus(realEnv(), n2.t);
    const atAcceptor: Message[] = [];
    const atProposer: Message[] = [];
    for (const ring of ['ring-a', 'ring-b']) {
      bus2.register(ring, 'r2', 'acceptor', (m) => {
        atAcceptor.push(m);
        if (m.type === 'prepare') bus2.send({ ...makeMessage('promise', 'r2', 'r1', ring) });
      });
      bus1.register(ring, 'r1', 'proposer', (m) => atProposer.push(m));
    }
    bus1.send(makeMessage('prepare', 'r1', 'r2', 'ring-a'));
    bus1.send(makeMessage('prepare', 'r1', 'r2', 'ring-b'));
    await waitFor(() => atProposer.length === 2, 'promises back');
    expect(atAcceptor.map((m) => `${m.ring}:${m.type}`)).toEqual(['ring-a:prepare', 'ring-b:prepare']);
    expect(atProposer.map((m) => `${m.ring}:${m.type}`)).toEqual(['ring-a:promise', 'ring-b:promise']);
    expect(n1.t.stats().peers.r2!.connects).toBe(1);
    expect(n2.t.stats().inboundAccepted).toBe(1);
    await Promise.all([bus1.close(), bus2.close()]);
  });
});
