/**
 * LinkProxy on loopback: pipes both ways while open; cut() closes live connections and refuses or
 * blackholes new ones; restore() opens it again.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinkProxy, freePorts } from '../src/index.ts';

let echo: net.Server;
let proxy: LinkProxy;

beforeAll(async () => {
  echo = net.createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const [port] = await freePorts(1);
  proxy = new LinkProxy('a', 'b', port!, (echo.address() as net.AddressInfo).port);
  await proxy.listen();
});

afterAll(async () => {
  await proxy.close();
  await new Promise<void>((r) => echo.close(() => r()));
});

interface Seen {
  got: string;
  closed: boolean;
}

/**
 * Connects through the proxy and writes `msg`; once `ready` holds (polled; at the latest after
 * `maxMs`, generous for a loaded machine) it watches `lingerMs` more, then resolves with what came
 * back and whether the socket closed. Waiting for an event rather than a fixed time: a starved test
 * process can run a short timer before it handles the I/O that was due before it.
 */
function roundTrip(msg: string, ready: (s: Seen) => boolean, lingerMs = 100, maxMs = 10_000): Promise<Seen> {
  return new Promise((resolve) => {
    const s = net.connect({ port: proxy.listenPort, host: '127.0.0.1' });
    const seen: Seen = { got: '', closed: false };
    s.on('data', (d) => (seen.got += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => (seen.closed = true));
    s.on('connect', () => s.write(msg));
    const end = Date.now() + maxMs;
    const poll = setInterval(() => {
      if (!ready(seen) && Date.now() < end) return;
      clearInterval(poll);
      setTimeout(() => {
        s.destroy();
        resolve({ ...seen });
      }, lingerMs);
    }, 5);
  });
}
const echoed = (msg: string) => (s: Seen) => s.got.length >= msg.length || s.closed;

describe('LinkProxy', () => {
  it('pipes both ways while open', async () => {
    expect(await roundTrip('hello', echoed('hello'))).toEqual({ got: 'hello', closed: false });
  });

  it('cut closes a live connection and refuses new ones; restore opens it again', async () => {
    const live = net.connect({ port: proxy.listenPort, host: '127.0.0.1' });
    live.on('error', () => undefined);
    await new Promise((r) => live.once('connect', r));
    await new Promise((r) => setTimeout(r, 50));
    const closed = new Promise((r) => live.once('close', r));
    proxy.cut('refuse');
    await closed; // the live connection was destroyed
    const refused = await roundTrip('x', (x) => x.closed);
    expect(refused.got).toBe('');
    expect(refused.closed).toBe(true);
    expect(proxy.stats.refused).toBeGreaterThan(0);
    proxy.restore();
    expect(await roundTrip('again', echoed('again'))).toEqual({ got: 'again', closed: false });
  });

  it('blackhole accepts but never answers, and closes those connections on restore', async () => {
    proxy.cut('blackhole');
    // once the proxy has taken the connection, nothing comes back and it stays open
    const r = await roundTrip('void', () => proxy.stats.blackholed > 0, 300);
    expect(r).toEqual({ got: '', closed: false });
    expect(proxy.stats.blackholed).toBeGreaterThan(0);
    proxy.restore();
    expect(proxy.isCut).toBe(false);
    expect(await roundTrip('back', echoed('back'))).toEqual({ got: 'back', closed: false });
  });
});
