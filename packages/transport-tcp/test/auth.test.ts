import { afterEach, describe, expect, it } from 'vitest';
import { encodeMessage } from '@decree/protocol';
import { STATUS_REFUSED, decodeWelcome, encodeAuth, encodeHello, frames, type PeerAddress } from '../src/index.ts';
import { makeMessage, node, waitFor, type Node } from './helpers.ts';
import { RawClient } from './raw.ts';

const open: Node[] = [];
const raws: RawClient[] = [];
afterEach(async () => {
  await Promise.all(raws.splice(0).map((r) => r.destroy()));
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});
async function pairWith(aSecret: string | undefined, bSecret: string | undefined) {
  const dir: Record<string, PeerAddress> = {};
  const b = await node('b', dir, bSecret ? { secret: bSecret } : {});
  const a = await node('a', dir, aSecret ? { secret: aSecret } : {});
  open.push(a, b);
  dir.b = { host: '127.0.0.1', port: b.port };
  dir.a = { host: '127.0.0.1', port: a.port };
  return { a, b };
}

describe('shared-secret authentication', () => {
  it('both sides with the same secret talk both ways', async () => {
    const { a, b } = await pairWith('s3cret', 's3cret');
    a.t.send(makeMessage('prepare', 'a', 'b'));
    b.t.send(makeMessage('promise', 'b', 'a'));
    await waitFor(() => a.got.length === 1 && b.got.length === 1, 'both');
    expect(a.t.stats().authFailures + b.t.stats().authFailures).toBe(0);
  });

  it('different secrets: refused, the dialler says so, nothing is delivered', async () => {
    const { a, b } = await pairWith('one', 'two');
    a.t.send(makeMessage('prepare', 'a', 'b'));
    await waitFor(() => a.errors.some((e) => e.code === 'auth'), 'auth error');
    expect(a.errors.find((e) => e.code === 'auth')!.message).toMatch(
      /b@127\.0\.0\.1:\d+ failed the shared-secret check/,
    );
    expect(a.t.isConnected('b')).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(b.got).toEqual([]);
  });

  it('a secret on one side only is refused either way', async () => {
    const { a, b } = await pairWith(undefined, 'only-b');
    a.t.send(makeMessage('prepare', 'a', 'b'));
    await waitFor(() => a.errors.some((e) => e.code === 'auth'), 'auth error at a');
    expect(a.errors.find((e) => e.code === 'auth')!.message).toMatch(
      /requires a shared secret and none is configured here/,
    );
    b.t.send(makeMessage('promise', 'b', 'a'));
    await waitFor(() => b.errors.some((e) => e.code === 'auth' && /did not prove/.test(e.message)), 'auth error at b');
    await new Promise((r) => setTimeout(r, 50));
    expect(a.got).toEqual([]);
    expect(b.got).toEqual([]);
  });

  it('a raw client that skips or forges the proof gets nothing delivered', async () => {
    const { b } = await pairWith(undefined, 'k');
    // no auth frame: the message where the proof should be is rejected and the connection closed
    const r1 = new RawClient(b.port);
    raws.push(r1);
    const w = await r1.handshake(['x'], 'b');
    expect(w.proof).toBeInstanceOf(Uint8Array);
    r1.write(frames([encodeMessage(makeMessage('accept', 'x', 'b'))]));
    await r1.closedP;
    // forged proof
    const r2 = new RawClient(b.port);
    raws.push(r2);
    await r2.handshake(['x'], 'b');
    r2.write(frames([encodeAuth(new Uint8Array(32)), encodeMessage(makeMessage('accept', 'x', 'b'))]));
    await r2.closedP;
    expect(b.got).toEqual([]);
    expect(b.t.stats().authFailures).toBe(2);
    expect(
      b.logs.filter((l) => l.level === 'error' && /failed the shared-secret check/.test(l.msg)).length,
    ).toBeGreaterThanOrEqual(1);
    // a hello with no challenge at all is refused with a reason
    const r3 = new RawClient(b.port);
    raws.push(r3);
    await r3.ready();
    r3.write(frames([encodeHello({ minVersion: 1, maxVersion: 1, ids: ['x'], to: 'b' })]));
    await r3.closedP;
    const refusal = decodeWelcome(r3.frames[0]!);
    expect(refusal.status).toBe(STATUS_REFUSED);
    expect(refusal.error).toBe('x sent no challenge, but this replica (b) requires shared-secret authentication');
    expect(b.t.stats().authFailures).toBe(3);
  });
});
