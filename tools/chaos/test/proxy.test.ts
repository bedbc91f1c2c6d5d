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

/** Connects through the proxy; resolves with what came back within `waitMs` and whether the socket closed. */
function roundTrip(msg: string, waitMs = 400): Promise<{ got: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ port: proxy.listenPort, host: '127.0.0.1' });
    let got = '';
    let closed = false;
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => (closed = true));
    s.on('connect', () => s.write(msg));
    setTimeout(() => {
      s.destroy();
      resolve({ got, closed });
    }, waitMs);
  });
}

describe('LinkProxy', () => {
  it('pipes both ways while open', async () => {
    expect(await roundTrip('hello')).toEqual({ got: 'hello', closed: false });
  });

  it('cut closes a live connection and refuses new ones; restore opens it again', async () => {
    const live = net.connect({ port: proxy.listenPort, host: '127.0.0.1' });
    live.on('error', () => undefined);
    await new Promise((r) => live.once('connect', r));
    await new Promise((r) => setTimeout(r, 50));
    const closed = new Promise((r) => live.once('close', r));
    proxy.cut('refuse');
    await closed; // the live connection was destroyed
    const refused = await roundTrip('x');
    expect(refused.got).toBe('');
    expect(refused.closed).toBe(true);
    expect(proxy.stats.refused).toBeGreaterThan(0);
    proxy.restore();
    expect(await roundTrip('again')).toEqual({ got: 'again', closed: false });
  });

  it('blackhole accepts but never answers, and closes those connections on restore', async () => {
    proxy.cut('blackhole');
    const r = await roundTrip('void', 300);
    expect(r).toEqual({ got: '', closed: false });
    expect(proxy.stats.blackholed).toBeGreaterThan(0);
    proxy.restore();
    expect(proxy.isCut).toBe(false);
    expect(await roundTrip('back')).toEqual({ got: 'back', closed: false });
  });
});
