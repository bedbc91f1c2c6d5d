import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import net from 'node:net';
import { connect, type NatsConnection } from 'nats';
import { Bus, realEnv } from '@decree/bus';
import { MESSAGE_TYPES, ROLE_OF, encodeMessage, encodeValue, type Message, type MessageType } from '@decree/protocol';
import { samples, normal } from '../../protocol/test/arbitraries.ts';
import { createNatsTransport, type NatsTransport, type NatsTransportOptions } from '../src/index.ts';
import { startNatsServer, type NatsServerHandle } from '../src/testing.ts';
import { collect, memoryLogger, waitFor } from './helpers.ts';

let server: NatsServerHandle;
let raw: NatsConnection;
const open: NatsTransport[] = [];

async function transport(
  self: NatsTransportOptions['self'],
  extra: Partial<NatsTransportOptions> = {},
): Promise<NatsTransport> {
  const t = await createNatsTransport({
    servers: server.url,
    self,
    logger: memoryLogger(),
    connectTimeoutMs: 10_000,
    ...extra,
  });
  open.push(t);
  return t;
}

/** The same message addressed elsewhere, with trace headers. */
function retarget(m: Message, ring: string, from: string, to: string, headers?: Record<string, string>): Message {
  const { headers: _h, ...rest } = m;
  return { ...rest, ring, from, to, ...(headers ? { headers } : {}) } as Message;
}

/** Writes raw NATS protocol on a fresh TCP connection, then PING, and resolves on the PONG. */
function rawProtocol(head: string, payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: server.port, host: '127.0.0.1' }, () => {
      s.write(Buffer.concat([Buffer.from(head, 'latin1'), payload, Buffer.from('\r\nPING\r\n', 'latin1')]));
    });
    let seen = '';
    s.on('data', (d) => {
      seen += d.toString('latin1');
      if (seen.includes('PONG')) {
        s.destroy();
        resolve();
      } else if (seen.includes('-ERR')) {
        s.destroy();
        reject(new Error(seen));
      }
    });
    s.on('error', reject);
  });
}

beforeAll(async () => {
  server = await startNatsServer();
  raw = await connect({ servers: server.url });
});

afterAll(async () => {
  for (const t of open) await t.close();
  await raw?.close();
  await server?.stop();
});

describe('NATS transport against a real nats-server', () => {
  it('carries every message type between three transports, headers intact', async () => {
    const [a, b, c] = [await transport('A'), await transport('B'), await transport('C')];
    const [gotA, gotB, gotC] = [collect(a), collect(b), collect(c)];
    const trace = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'decree=1' };
    const sent: { from: NatsTransport; m: Message }[] = [];
    for (const type of MESSAGE_TYPES) {
      sent.push({ from: a, m: retarget(samples[type], 'ring0', 'A', 'B', { ...trace, 'x-type': type }) });
      sent.push({ from: a, m: retarget(samples[type], 'ring0', 'A', 'C') });
      sent.push({ from: c, m: retarget(samples[type], 'ring0', 'C', 'A', trace) });
    }
    for (const { from, m } of sent) from.send(m);
    const n = MESSAGE_TYPES.length;
    await waitFor(() => gotA.length === n && gotB.length === n && gotC.length === n, 'all messages');
    const want = (to: string) => sent.filter((s) => s.m.to === to).map((s) => normal(s.m));
    expect(gotB.map(normal)).toEqual(want('B'));
    expect(gotC.map(normal)).toEqual(want('C'));
    expect(gotA.map(normal)).toEqual(want('A'));
    // headers travelled as NATS headers, not inside the body
    expect(gotB[0]!.headers).toEqual({ ...trace, 'x-type': MESSAGE_TYPES[0] });
    expect(gotC.every((m) => m.headers === undefined)).toBe(true);
    expect(a.stats().sent).toBe(2 * n);
    expect(b.stats().received).toBe(n);
    expect(b.stats().badPayloads + b.stats().mismatched).toBe(0);
  });

  it('publishes on <prefix>.<ring>.<replica>.<role> and never on another role', async () => {
    const a = await transport('A2');
    const seen: { subject: string; hasHeaders: boolean }[] = [];
    const sub = raw.subscribe('decree.ringR.B2.>', {
      callback: (_e, m) => seen.push({ subject: m.subject, hasHeaders: !!m.headers }),
    });
    await raw.flush();
    for (const type of MESSAGE_TYPES) a.send(retarget(samples[type], 'ringR', 'A2', 'B2', { traceparent: 't' }));
    await waitFor(() => seen.length === MESSAGE_TYPES.length, 'raw subscriber');
    sub.unsubscribe();
    expect(seen.map((s) => s.subject)).toEqual(MESSAGE_TYPES.map((t) => `decree.ringR.B2.${ROLE_OF[t]}`));
    expect(seen.every((s) => s.hasHeaders)).toBe(true);
    expect(a.subjectOf(samples.prepare)).toBe('decree.ring0.r2.acceptor');
    expect(a.subjectOf(samples.promise)).toBe('decree.ring0.r2.proposer');
    expect(a.subjectOf(samples.heartbeat)).toBe('decree.ring0.r2.elector');
    expect(a.subjectOf(samples.decide)).toBe('decree.ring0.r2.learner');
    expect(a.subjectOf(samples['client-rep'])).toBe('decree.ring0.r2.client');
  });

  it('serves several replicas of several rings over one connection', async () => {
    const host = await transport(['P1', 'P2']);
    const peer = await transport('P3');
    const got = collect(host);
    const gotPeer = collect(peer);
    const rings = ['ring-a', 'ring-b', 'ring-c'];
    const want: Message[] = [];
    for (const ring of rings)
      for (const to of ['P1', 'P2']) {
        const m = retarget(samples.accept, ring, 'P3', to);
        want.push(m);
        peer.send(m);
      }
    // and back: the host's replicas answer the peer, in every ring
    for (const ring of rings) host.send(retarget(samples.accepted, ring, 'P1', 'P3'));
    await waitFor(() => got.length === want.length && gotPeer.length === rings.length, 'multi-ring delivery');
    expect(got.map(normal)).toEqual(want.map(normal));
    expect(gotPeer.map((m) => m.ring)).toEqual(rings);
    expect(host.self).toEqual(['P1', 'P2']);
    expect(host.connection.stats().outMsgs).toBe(rings.length); // one connection carried everything
  });

  it('routes ids that are not subject tokens, under a dotted prefix', async () => {
    const opts = { subjectPrefix: 'acme.decree' };
    const a = await transport('node a.1', opts);
    const b = await transport('node*b>2', opts);
    const other = await transport('node', opts); // must not see messages for 'node a.1'
    const gotA = collect(a);
    const gotB = collect(b);
    const gotOther = collect(other);
    b.send(retarget(samples.heartbeat, 'ring.x', 'node*b>2', 'node a.1'));
    a.send(retarget(samples['heartbeat-ack'], 'ring.x', 'node a.1', 'node*b>2'));
    await waitFor(() => gotA.length === 1 && gotB.length === 1, 'escaped delivery');
    expect(gotA[0]!.ring).toBe('ring.x');
    expect(gotB[0]!.to).toBe('node*b>2');
    expect(a.subjectOf(gotB[0]!)).toBe('acme.decree.ring%2Ex.node%2Ab%3E2.elector');
    expect(gotOther).toEqual([]);
  });

  it('drops and counts garbage on a replica subject, and keeps receiving', async () => {
    const logger = memoryLogger();
    const b = await transport('G', { logger });
    const got = collect(b);
    const payloads: Uint8Array[] = fc.sample(fc.uint8Array({ maxLength: 300 }), { seed: 42, numRuns: 40 });
    payloads.push(
      encodeValue({ type: 'accept', ring: 'r', from: 'x', to: 'G' }),
      encodeValue([1, 2, 3]),
      new Uint8Array(),
    );
    for (const p of payloads) raw.publish('decree.ring0.G.acceptor', p);
    // a real message on the wrong role's subject, and one for another replica on G's subject
    raw.publish('decree.ring0.G.learner', encodeMessage(retarget(samples.prepare, 'ring0', 'x', 'G')));
    raw.publish('decree.ring0.G.acceptor', encodeMessage(retarget(samples.prepare, 'ring0', 'x', 'H')));
    raw.publish('decree.ring1.G.acceptor', encodeMessage(retarget(samples.prepare, 'ring0', 'x', 'G')));
    // a header block the client cannot parse (a space in a header name), written as raw protocol
    const body = Buffer.from(encodeMessage(retarget(samples.prepare, 'ring0', 'x', 'G')));
    const hdr = Buffer.from('NATS/1.0\r\nbad key: v\r\n\r\n', 'latin1');
    await rawProtocol(
      `CONNECT {"verbose":false,"headers":true}\r\nHPUB ` +
        `decree.ring0.G.acceptor ${hdr.length} ${hdr.length + body.length}\r\n`,
      Buffer.concat([hdr, body]),
    );
    const good = retarget(samples.prepare, 'ring0', 'x', 'G');
    raw.publish('decree.ring0.G.acceptor', encodeMessage(good));
    await waitFor(() => got.length === 1, 'the good message after the garbage');
    expect(normal(got[0])).toEqual(normal(good));
    const s = b.stats();
    expect(s.badPayloads).toBe(payloads.length + 1);
    expect(s.mismatched).toBe(3);
    expect(s.received).toBe(1);
    expect(logger.lines.some((l) => /undecodable/.test(l.msg))).toBe(true);
    expect(b.isConnected('anyone')).toBe(true);
  });

  it(
    'restores arbitrary headers exactly (NATS headers, ' + 'or the body when a header cannot travel verbatim)',
    async () => {
      const a = await transport('HA');
      const b = await transport('HB');
      const got = collect(b);
      const key = fc.oneof(
        fc.constantFrom('traceparent', 'tracestate', 'baggage', 'X-Trace', 'x-trace'),
        fc.string({ maxLength: 10 }),
      );
      const value = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 10 }));
      const arb = fc.dictionary(key, value, { maxKeys: 5 }).filter((h) => !('__proto__' in h));
      let i = 0;
      await fc.assert(
        fc.asyncProperty(arb, async (headers) => {
          const m = retarget(samples.decide, 'ring0', 'HA', 'HB', headers);
          const before = got.length;
          a.send(m);
          await waitFor(() => got.length === before + 1, `message ${i++}`);
          expect(got[before]!.headers).toEqual(headers);
        }),
        { numRuns: 60, seed: 7 },
      );
    },
  );

  it('bounds what is waiting for the server: over maxPendingBytes, send drops and counts', async () => {
    const maxPendingBytes = 64 * 1024;
    const a = await transport('BP', { maxPendingBytes, flushEveryBytes: 16 * 1024 });
    const big: Message = {
      type: 'submit',
      ring: 'ring0',
      from: 'BP',
      to: 'nobody',
      items: [{ id: 1, cmd: new Uint8Array(6000) }],
    };
    let maxSeen = 0;
    for (let i = 0; i < 2000; i++) {
      a.send(big); // synchronous loop: no PONG can come back meanwhile, so the bound must hold by itself
      maxSeen = Math.max(maxSeen, a.stats().pendingBytes);
    }
    const s = a.stats();
    expect(maxSeen).toBeLessThanOrEqual(maxPendingBytes + 6200);
    expect(s.dropped.backpressure).toBeGreaterThan(0);
    expect(s.sent + s.dropped.backpressure).toBe(2000);
    await waitFor(() => a.stats().pendingBytes < 16 * 1024, 'the server to confirm');
    const sentBefore = a.stats().sent;
    a.send(big);
    expect(a.stats().sent).toBe(sentBefore + 1);
  });

  it('never throws from send: oversize, closed, before a receiver', async () => {
    const a = await transport('S1');
    const b = await transport('S2');
    const huge: Message = {
      type: 'submit',
      ring: 'ring0',
      from: 'S1',
      to: 'S2',
      items: [{ id: 1, cmd: new Uint8Array(2 * 1024 * 1024) }],
    };
    expect(() => a.send(huge)).not.toThrow();
    expect(a.stats().dropped.oversize).toBe(1);
    a.send(retarget(samples.decide, 'ring0', 'S1', 'S2'));
    await waitFor(() => b.stats().dropped.noReceiver === 1, 'a message with no receiver set');
    await a.close();
    expect(a.status).toBe('closed');
    expect(a.isConnected('S2')).toBe(false);
    expect(() => a.send(retarget(samples.decide, 'ring0', 'S1', 'S2'))).not.toThrow();
    expect(a.stats().dropped.closed).toBe(1);
    await a.close(); // idempotent
  });

  it('works under the Bus: a role registered on one bus gets what another process sends', async () => {
    const busA = new Bus(realEnv(), await transport('BA'));
    const busB = new Bus(realEnv(), await transport('BB'));
    const got: Message[] = [];
    busB.register('ring0', 'BB', 'acceptor', (m) => got.push(m));
    busA.send(retarget(samples.prepare, 'ring0', 'BA', 'BB', { traceparent: 'x' }));
    await waitFor(() => got.length === 1, 'bus delivery');
    expect(got[0]!.type).toBe('prepare');
    expect(got[0]!.headers).toEqual({ traceparent: 'x' });
    await busA.close();
    await busB.close();
  });

  it('rejects an invalid configuration with a clear error', async () => {
    await expect(createNatsTransport({ servers: server.url, self: [] })).rejects.toThrow(/names no replica/);
    await expect(createNatsTransport({ servers: server.url, self: 'x', subjectPrefix: 'a.*' })).rejects.toThrow(
      /invalid subject prefix/,
    );
  });
});

// every type is covered by the samples used above
const covered: MessageType[] = Object.keys(samples) as MessageType[];
if (covered.length !== MESSAGE_TYPES.length) throw new Error('samples do not cover every message type');
