/**
 * Refusal codes end to end (packages/wire): the listener's code crosses the wire, and both sides'
 * TransportErrors carry it, next to the transport's own error code and the unchanged messages.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TcpTransport, type PeerAddress } from '../src/index.ts';
import { EncodeOnce } from '../src/encode-once.ts';
import { makeMessage, node, waitFor, type Node } from './helpers.ts';

const open: Node[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});
async function mk(...args: Parameters<typeof node>): Promise<Node> {
  const n = await node(...args);
  open.push(n);
  return n;
}

describe('refusal codes', () => {
  it('no version in common: VERSION at both ends', async () => {
    const dir: Record<string, PeerAddress> = {};
    const b = await mk('b', dir, { protocolVersions: { min: 1, max: 1 } });
    const a = await mk('a', dir, { protocolVersions: { min: 9, max: 9 } });
    dir.b = { host: '127.0.0.1', port: b.port };
    a.t.send(makeMessage('prepare', 'a', 'b'));
    await waitFor(() => a.errors.some((e) => e.code === 'version-refused'), 'refusal at the dialler');
    expect(a.errors.find((e) => e.code === 'version-refused')!.refusal).toBe('VERSION');
    expect(b.errors.find((e) => e.code === 'version-mismatch')!.refusal).toBe('VERSION');
  });

  it('a non-member: NOT_MEMBER at the listener, and the dialler learns it from the code', async () => {
    const dir: Record<string, PeerAddress> = {};
    const b = await mk('b', dir, { members: ['b', 'c'] });
    const a = await mk('a', dir);
    dir.b = { host: '127.0.0.1', port: b.port };
    a.t.send(makeMessage('prepare', 'a', 'b'));
    await waitFor(() => a.errors.some((e) => e.code === 'handshake-refused'), 'refusal at the dialler');
    const atA = a.errors.find((e) => e.code === 'handshake-refused')!;
    expect(atA.refusal).toBe('NOT_MEMBER');
    expect(atA.message).toMatch(
      /^handshake refused by b@127\.0\.0\.1:\d+: refused a: a is not a member of this cluster$/,
    );
    expect(b.errors.find((e) => e.code === 'auth')).toMatchObject({ refusal: 'NOT_MEMBER', peer: 'a' });
    const s = b.t.stats(); // the dialler retries (the peer may change): one count of each per refusal
    expect(s.notMembers).toBeGreaterThanOrEqual(1);
    expect(s.authFailures).toBe(s.notMembers);
    expect(s.handshakesRefused).toBe(s.notMembers);
  });

  it('a replica not hosted there: WRONG_REPLICA', async () => {
    const dir: Record<string, PeerAddress> = {};
    const b = await mk('b', dir);
    const a = await mk('a', dir);
    dir.c = { host: '127.0.0.1', port: b.port };
    a.t.send(makeMessage('prepare', 'a', 'c'));
    await waitFor(() => a.errors.some((e) => e.code === 'handshake-refused'), 'refusal');
    expect(a.errors.find((e) => e.code === 'handshake-refused')!.refusal).toBe('WRONG_REPLICA');
  });

  it('encodeOnce is an option (default on), not an environment variable', async () => {
    const encoder = (t: TcpTransport) => (t as unknown as { encoder: unknown }).encoder;
    const on = new TcpTransport({ self: 'x', peers: {}, logger: false });
    const off = new TcpTransport({ self: 'y', peers: {}, logger: false, encodeOnce: false });
    expect(encoder(on)).toBeInstanceOf(EncodeOnce);
    expect(encoder(off)).not.toBeInstanceOf(EncodeOnce);
    await Promise.all([on.close(), off.close()]);
  });
});
