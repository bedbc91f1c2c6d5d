import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RespError } from '@decree/chaos';
import { encodeCommand, PipelineConnection } from '../src/pipeline.ts';

/** A fake RESP server: answers each complete command with `answer(n)`; stops answering after `limit`. */
function fakeServer(answer: (n: number) => string, limit = Infinity, closeAtLimit = false): Promise<net.Server> {
  return new Promise((resolve) => {
    const s = net.createServer((sock) => {
      let n = 0;
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        // commands here are *2 or *3 arrays of short bulk strings: count the '*' line starts
        const parts = buf.split(/(?=\*\d+\r\n\$)/);
        buf = parts.pop() ?? '';
        for (const _ of parts) {
          if (n >= limit) {
            if (closeAtLimit) sock.destroy();
            return;
          }
          sock.write(answer(n++));
        }
      });
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

let server: net.Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

const frame = (n: number) => {
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) encodeCommand(i % 2 ? ['INCR', `c${i}`] : ['SET', `k${i}`, Buffer.from('v')], parts);
  encodeCommand(['PING'], parts); // the last one completes the final command for the splitter
  return Buffer.concat(parts);
};

describe('PipelineConnection', () => {
  it('collects every reply in order', async () => {
    server = await fakeServer((n) => (n % 3 === 2 ? '-TRYAGAIN no leader\r\n' : n % 2 ? ':5\r\n' : '+OK\r\n'));
    const port = (server.address() as net.AddressInfo).port;
    const c = await PipelineConnection.connect(port);
    const seen: number[] = [];
    const r = await c.send(frame(10), 10, 2000, (i) => seen.push(i));
    expect(r.broken).toBeUndefined();
    expect(r.replies.length).toBe(10);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(r.replies[2]).toBeInstanceOf(RespError);
    expect(r.replies[0]).toBe('OK');
    c.close();
  });

  it('gives up on stall with the replies so far', async () => {
    server = await fakeServer(() => '+OK\r\n', 4);
    const c = await PipelineConnection.connect((server.address() as net.AddressInfo).port);
    const r = await c.send(frame(10), 10, 300, () => undefined);
    expect(r.broken).toBe('timeout');
    expect(r.replies.length).toBe(4);
    expect(c.closed).toBe(true);
  });

  it('reports a broken connection with the replies so far', async () => {
    server = await fakeServer(() => '+OK\r\n', 3, true);
    const c = await PipelineConnection.connect((server.address() as net.AddressInfo).port);
    const r = await c.send(frame(10), 10, 5000, () => undefined);
    expect(r.broken).toBe('connection-lost');
    expect(r.replies.length).toBe(3);
  });
});
