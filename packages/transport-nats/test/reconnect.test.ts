import { afterAll, describe, expect, it } from 'vitest';
import type { Message } from '@decree/protocol';
import { createNatsTransport, type NatsTransport, type NatsTransportStatus } from '../src/index.ts';
import { freePort, startNatsServer, type NatsServerHandle } from '../src/testing.ts';
import { collect, memoryLogger, waitFor } from './helpers.ts';

const servers: NatsServerHandle[] = [];
const open: NatsTransport[] = [];
afterAll(async () => {
  for (const t of open) await t.close();
  for (const s of servers) await s.stop();
});

const hb = (from: string, to: string, decidedUpTo: number): Message => ({
  type: 'heartbeat',
  ring: 'ring0',
  from,
  to,
  ballot: { round: 1, leader: from },
  decidedUpTo,
  headers: { traceparent: `hb-${decidedUpTo}` },
});

/**
 * Sends `make(i)` every 50 ms until `got` holds one with decidedUpTo
 * >= the first one sent (resends are what Paxos does anyway).
 */
async function sendUntilReceived(t: NatsTransport, got: Message[], make: (i: number) => Message): Promise<Message> {
  const start = 1000 + got.length * 1000;
  let i = start;
  const timer = setInterval(() => t.send(make(i++)), 50);
  try {
    await waitFor(
      () => got.some((m) => m.type === 'heartbeat' && m.decidedUpTo >= start),
      'a message after reconnecting',
      30_000,
    );
  } finally {
    clearInterval(timer);
  }
  return got.find((m) => m.type === 'heartbeat' && m.decidedUpTo >= start)!;
}

describe('NATS transport: server restart', () => {
  it('drops while the server is down, reconnects by itself, and messages flow again', async () => {
    const first = await startNatsServer();
    servers.push(first);
    const opts = { servers: first.url, reconnectTimeWaitMs: 100, logger: memoryLogger(), connectTimeoutMs: 10_000 };
    const a = await createNatsTransport({ ...opts, self: 'A' });
    const b = await createNatsTransport({ ...opts, self: 'B' });
    open.push(a, b);
    const gotA = collect(a);
    const gotB = collect(b);
    const statusesA: NatsTransportStatus[] = [];
    a.onStatus((s) => statusesA.push(s));

    a.send(hb('A', 'B', 1));
    await waitFor(() => gotB.length === 1, 'before the restart');
    expect(a.isConnected('B')).toBe(true);

    await first.stop();
    await waitFor(() => !a.isConnected('B') && !b.isConnected('A'), 'both to see the disconnect');
    expect(a.status).toBe('disconnected');
    a.send(hb('A', 'B', 2)); // while down: dropped and counted, never thrown or queued without bound
    expect(a.stats().dropped.disconnected).toBe(1);

    const second = await startNatsServer({ port: first.port });
    servers.push(second);
    await waitFor(() => a.isConnected('B') && b.isConnected('A'), 'both to reconnect', 30_000);
    expect(statusesA).toEqual(['disconnected', 'connected']);

    const toB = await sendUntilReceived(a, gotB, (i) => hb('A', 'B', i));
    const toA = await sendUntilReceived(b, gotA, (i) => hb('B', 'A', i));
    expect(toB.type === 'heartbeat' && toB.headers).toEqual({
      traceparent: `hb-${toB.type === 'heartbeat' ? toB.decidedUpTo : -1}`,
    });
    expect(toA.from).toBe('B');
    expect(gotB.some((m) => m.type === 'heartbeat' && m.decidedUpTo === 2)).toBe(false);
    for (const t of [a, b]) {
      expect(t.stats().disconnects).toBeGreaterThanOrEqual(1);
      expect(t.stats().reconnects).toBeGreaterThanOrEqual(1);
    }
  });

  it('waits for a server that is not up yet (waitOnFirstConnect), and close() returns while it is down', async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    let settled = false;
    const pending = createNatsTransport({
      servers: url,
      self: 'late',
      reconnectTimeWaitMs: 100,
      logger: memoryLogger(),
    }).finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(settled).toBe(false); // still waiting, not failed
    const server = await startNatsServer({ port });
    servers.push(server);
    const late = await pending;
    const early = await createNatsTransport({
      servers: url,
      self: 'early',
      reconnectTimeWaitMs: 100,
      logger: memoryLogger(),
    });
    const got = collect(late);
    early.send(hb('early', 'late', 1));
    await waitFor(() => got.length === 1, 'delivery to the late starter');

    await server.stop();
    await waitFor(() => late.status === 'disconnected' && early.status === 'disconnected', 'the disconnect');
    const closing = Promise.all([late.close(), early.close()]);
    await expect(
      Promise.race([closing.then(() => 'closed'), new Promise((r) => setTimeout(() => r('hung'), 10_000))]),
    ).resolves.toBe('closed');
    expect(late.status).toBe('closed');
  });
});
