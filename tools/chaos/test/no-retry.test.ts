/**
 * The chunks workload's clients must never send a command twice: ioredis with NO_RETRY_OPTIONS, against a
 * fake RESP server that answers part of what it receives and then drops the connection.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectNoRetry, doubtCause } from '../src/redis.ts';

interface Fake {
  port: number;
  connections: number;
  received: string;
  close(): Promise<void>;
}

/** Answers `:N` to the first `answer` commands it sees, then destroys the connection. */
async function fakeServer(answer: number): Promise<Fake> {
  const f = { port: 0, connections: 0, received: '' } as Fake;
  const socks = new Set<net.Socket>();
  let answered = 0;
  const server = net.createServer((s) => {
    f.connections++;
    socks.add(s);
    s.on('data', (d) => {
      f.received += d.toString('latin1');
      const cmds = f.received.split('*').length - 1;
      while (answered < Math.min(cmds, answer)) s.write(`:${++answered}\r\n`);
      if (cmds > answer) s.destroy();
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  f.port = (server.address() as net.AddressInfo).port;
  f.close = () =>
    new Promise<void>((r) => {
      for (const s of socks) s.destroy();
      server.close(() => r());
    });
  return f;
}

const count = (s: string, cmd: string) => s.split(`\r\n${cmd}\r\n`).length - 1;
let fake: Fake | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

describe('ioredis with every retry off', () => {
  it('an INCR whose connection drops is rejected, never resent, and no reconnection happens', async () => {
    fake = await fakeServer(0);
    const r = await connectNoRetry(fake.port);
    const err = await r.incr('k').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(doubtCause(err, false)).toBe('connection-lost');
    await new Promise((res) => setTimeout(res, 500));
    expect(fake.connections).toBe(1);
    // exactly our command: no HELLO, INFO or CLIENT SETINFO before it, and no second copy after it
    expect(fake.received).toBe('*2\r\n$4\r\nincr\r\n$1\r\nk\r\n');
    await expect(r.incr('k')).rejects.toThrow();
    r.disconnect(false);
  });

  it('a pipeline cut after two answers: two results, the rest in doubt, nothing sent again', async () => {
    fake = await fakeServer(2);
    const r = await connectNoRetry(fake.port);
    const p = r.pipeline();
    for (let i = 0; i < 5; i++) p.incr('k');
    const res = (await p.exec()) as [Error | null, unknown][];
    expect(res.map(([e, v]) => (e ? 'doubt' : v))).toEqual([1, 2, 'doubt', 'doubt', 'doubt']);
    await new Promise((res2) => setTimeout(res2, 500));
    expect(fake.connections).toBe(1);
    expect(count(fake.received, 'incr')).toBe(5);
    r.disconnect(false);
  });
});
