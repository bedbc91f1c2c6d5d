import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '@decree/protocol';
import { NatsTransportError, createNatsTransport, type NatsTransport } from '../src/index.ts';
import { freePort, startNatsServer, type NatsServerHandle } from '../src/testing.ts';
import { collect, memoryLogger, waitFor } from './helpers.ts';

let userServer: NatsServerHandle;
let tokenServer: NatsServerHandle;
const open: NatsTransport[] = [];

beforeAll(async () => {
  [userServer, tokenServer] = await Promise.all([
    startNatsServer({ auth: { user: 'decree', pass: 's3cret "quoted"' } }),
    startNatsServer({ auth: { token: 'tok-123' } }),
  ]);
});
afterAll(async () => {
  for (const t of open) await t.close();
  await userServer?.stop();
  await tokenServer?.stop();
});

const decide = (from: string, to: string): Message => ({
  type: 'decide',
  ring: 'ring0',
  from,
  to,
  ballot: { round: 1, leader: from },
  upTo: 5,
});

async function exchange(a: NatsTransport, b: NatsTransport): Promise<void> {
  const got = collect(b);
  a.send(decide(String(a.self[0]), String(b.self[0])));
  await waitFor(() => got.length === 1, 'delivery with credentials');
  expect(got[0]!.type).toBe('decide');
}

describe('NATS transport: credentials', () => {
  it('user/password: the right ones work', async () => {
    const base = { servers: userServer.url, user: 'decree', pass: 's3cret "quoted"', logger: memoryLogger() };
    const a = await createNatsTransport({ ...base, self: 'A' });
    const b = await createNatsTransport({ ...base, self: 'B' });
    open.push(a, b);
    await exchange(a, b);
  });

  it('user/password: a wrong password or none fails with a clear error', async () => {
    const attempt = (extra: object) =>
      createNatsTransport({ servers: userServer.url, self: 'X', logger: memoryLogger(), ...extra });
    const wrong = await attempt({ user: 'decree', pass: 'nope' }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(NatsTransportError);
    expect((wrong as Error).message).toContain(userServer.url);
    expect((wrong as Error).message).toMatch(/authorization violation.*credentials/);
    // the same with a bounded wait
    await expect(attempt({ user: 'nobody', pass: 'x', connectTimeoutMs: 20_000 })).rejects.toThrow(
      /authorization violation/,
    );
    await expect(attempt({})).rejects.toThrow(/authorization violation/);
  });

  it('token: right works, wrong fails', async () => {
    const base = { servers: tokenServer.url, logger: memoryLogger() };
    const a = await createNatsTransport({ ...base, self: 'TA', token: 'tok-123' });
    const b = await createNatsTransport({ ...base, self: 'TB', token: 'tok-123' });
    open.push(a, b);
    await exchange(a, b);
    await expect(createNatsTransport({ ...base, self: 'TC', token: 'tok-999' })).rejects.toThrow(
      /authorization violation/,
    );
  });

  it('no server there: connectTimeoutMs bounds the wait with a clear error', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const err = await createNatsTransport({
      servers: url,
      self: 'Z',
      connectTimeoutMs: 500,
      reconnectTimeWaitMs: 100,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsTransportError);
    expect((err as Error).message).toMatch(new RegExp(`cannot connect to ${url}: connection refused`));
  });
});
