import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TcpTransport, type PeerAddress, type TcpTransportOptions } from '../src/index.ts';
import { certificateNames } from '../src/tls.ts';
import { makePki, type Pem, type TestPki } from './certs.ts';
import { makeMessage, node, waitFor, type Node } from './helpers.ts';
import { Intruder, acceptMsg, busAcceptor, busProposer } from './security-helpers.ts';

let pki: TestPki;
beforeAll(() => {
  pki = makePki(['r1', 'r2', 'r3']);
}, 60_000);
afterAll(() => pki?.cleanup());

const open: { t: TcpTransport }[] = [];
const intruders: Intruder[] = [];
const stops: (() => void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) s();
  await Promise.all(intruders.splice(0).map((r) => r.destroy()));
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});

const MEMBERS = ['r1', 'r2', 'r3'];
const tlsFor = (pem: Pem, ca = pki.ca) => ({ tls: { ca, cert: pem.cert, key: pem.key }, members: MEMBERS });
async function mk(
  self: string,
  dir: Record<string, PeerAddress>,
  pem: Pem,
  extra: Partial<TcpTransportOptions> = {},
): Promise<Node> {
  const n = await node(self, dir, { ...tlsFor(pem), ...extra });
  open.push(n);
  dir[self] = { host: '127.0.0.1', port: n.port };
  return n;
}
const settle = () => new Promise((r) => setTimeout(r, 100));

describe('mutual TLS', () => {
  it('certificate names: CN and every DNS/URI SAN', () => {
    expect(
      certificateNames({
        subject: { CN: 'r1' },
        subjectaltname: 'DNS:r1, URI:decree:r1, IP Address:127.0.0.1',
      } as never),
    ).toEqual(['r1', 'r1', 'decree:r1', '127.0.0.1']);
    expect(certificateNames({} as never)).toEqual([]);
  });

  it(
    'three replicas with cluster-CA certificates talk both ' + 'ways (material given as PEM strings or file paths)',
    async () => {
      const dir: Record<string, PeerAddress> = {};
      const r1 = await mk('r1', dir, pki.good.r1!, { tls: pki.paths });
      const r2 = await mk('r2', dir, pki.good.r2!);
      const r3 = await mk('r3', dir, pki.good.r3!);
      r1.t.send(makeMessage('prepare', 'r1', 'r2'));
      r2.t.send(makeMessage('promise', 'r2', 'r1'));
      r3.t.send(makeMessage('accepted', 'r3', 'r1'));
      r1.t.send(makeMessage('accept', 'r1', 'r3'));
      await waitFor(() => r1.got.length === 2 && r2.got.length === 1 && r3.got.length === 1, 'all four');
      for (const n of [r1, r2, r3]) expect(n.t.stats().authFailures).toBe(0);
    },
  );

  it('rejects a bad path with a clear error', () => {
    expect(
      () =>
        new TcpTransport({
          self: 'r1',
          peers: {},
          tls: { ca: '/nonexistent/ca.pem', cert: pki.good.r1!.cert, key: pki.good.r1!.key },
        }),
    ).toThrow(/tls\.ca: cannot read \/nonexistent\/ca\.pem/);
  });

  for (const [name, pem, claim] of [
    ['a certificate from another CA', () => pki.foreign, 'r2'],
    ['a self-signed certificate', () => pki.selfSigned, 'r2'],
    ['a cluster-CA certificate for another name', () => pki.wrongName, 'r2'],
    ['a cluster-CA certificate of a non-member', () => pki.wrongName, 'r9'],
  ] as const) {
    it(`an impostor with ${name} cannot join or inject; the good peer keeps working`, async () => {
      const dir: Record<string, PeerAddress> = {};
      const r1 = await mk('r1', dir, pki.good.r1!);
      const r3 = await mk('r3', dir, pki.good.r3!);
      // the impostor as a transport (claims `claim`): r1 dials it, and it dials r1
      const impDir: Record<string, PeerAddress> = { r1: dir.r1! };
      const imp = await node(claim, impDir, { tls: { ca: pki.ca, cert: pem().cert, key: pem().key }, logger: false });
      open.push(imp);
      dir[claim] = { host: '127.0.0.1', port: imp.port };
      imp.t.send(acceptMsg(claim, 'r1', 1000, 1));
      r1.t.send(makeMessage('prepare', 'r1', claim));
      // and a hand-driven intruder with the same certificate writing a forged accept straight away
      const raw = new Intruder(r1.port, { tls: { ca: pki.ca, pem: pem() } });
      intruders.push(raw);
      const w = await raw.handshake([claim], 'r1');
      raw.send(acceptMsg(claim, 'r1', 1000, 2));
      await waitFor(() => r1.t.stats().authFailures >= 3, 'r1 refused the impostor three times');
      // meanwhile the good peer works
      r3.t.send(makeMessage('accept', 'r3', 'r1'));
      await waitFor(() => r1.got.length === 1, 'the good one');
      await raw.closedP;
      await settle();
      expect(r1.got.map((m) => m.from)).toEqual(['r3']);
      expect(imp.got).toEqual([]);
      expect(imp.t.isConnected('r1')).toBe(false);
      expect(w === undefined || w.status !== 0).toBe(true);
      const s = r1.t.stats();
      expect(s.framesIn).toBe(1); // not one frame of the impostor was read as a message
      if (name.includes('non-member')) expect(s.notMembers).toBeGreaterThanOrEqual(1);
      else expect(s.tlsFailures).toBeGreaterThanOrEqual(3);
      expect(
        r1.logs.some((l) => l.level === 'error' && /TLS handshake|certificate names|not a member/.test(l.msg)),
      ).toBe(true);
    });
  }

  it('a client without a certificate, or speaking plain TCP to a TLS port, gets nowhere', async () => {
    const dir: Record<string, PeerAddress> = {};
    const r1 = await mk('r1', dir, pki.good.r1!);
    const noCert = new Intruder(r1.port, { tls: { ca: pki.ca } });
    intruders.push(noCert);
    await noCert.handshake(['r2'], 'r1');
    noCert.send(acceptMsg('r2', 'r1', 1000, 1));
    const plain = new Intruder(r1.port);
    intruders.push(plain);
    await plain.ready();
    plain.send(acceptMsg('r2', 'r1', 1000, 1));
    await Promise.all([noCert.closedP, plain.closedP]);
    await waitFor(() => r1.t.stats().tlsFailures >= 2, 'two TLS failures');
    expect(r1.got).toEqual([]);
    expect(r1.t.stats().framesIn).toBe(0);
  });

  it('a dialler refuses a listener whose certificate names another replica than the one it dialled', async () => {
    const dir: Record<string, PeerAddress> = {};
    const r1 = await mk('r1', dir, pki.good.r1!);
    // "r2" in r1's directory is really r3 (with r3's good certificate) hosting r2 and r3
    const r3 = await node(['r3', 'r2'], {}, { ...tlsFor(pki.good.r3!), logger: false });
    open.push(r3);
    dir.r2 = { host: '127.0.0.1', port: r3.port };
    r1.t.send(makeMessage('prepare', 'r1', 'r2'));
    await waitFor(() => r1.errors.some((e) => e.code === 'auth'), 'auth error at r1');
    expect(r1.errors.find((e) => e.code === 'auth')!.message).toMatch(/the certificate names r3,decree:r3, not r2/);
    await settle();
    expect(r3.got).toEqual([]);
  });

  it('over an authenticated connection, a message with a spoofed `from` is dropped and counted', async () => {
    const dir: Record<string, PeerAddress> = {};
    const r1 = await mk('r1', dir, pki.good.r1!);
    const raw = new Intruder(r1.port, { tls: { ca: pki.ca, pem: pki.good.r3! } });
    intruders.push(raw);
    const w = await raw.handshake(['r3'], 'r1');
    expect(w?.status).toBe(0);
    raw.send(acceptMsg('r2', 'r1', 1000, 1), acceptMsg('r9', 'r1', 1000, 1), acceptMsg('r3', 'r1', 1, 1));
    await waitFor(() => r1.got.length === 1, 'the honest one');
    expect(r1.got[0]!.from).toBe('r3');
    expect(r1.t.stats().spoofed).toBe(2);
    expect(r1.errors.filter((e) => e.code === 'misrouted').length).toBe(2);
  });

  it(
    'Bus + real acceptor: forged high-ballot Accepts (wrong ' +
      'cert, non-member, spoofed from) never move its promise',
    async () => {
      const dir: Record<string, PeerAddress> = {};
      const t2 = await mk('r2', dir, pki.good.r2!);
      const t1 = await mk('r1', dir, pki.good.r1!);
      const acc = busAcceptor('r2', t2.t);
      stops.push(acc.stop);
      const prop = busProposer('r1', t1.t);
      prop.bus.send(acceptMsg('r1', 'r2', 5, 1));
      await waitFor(() => prop.got.some((m) => m.type === 'accepted'), 'first accepted');
      // attacks, each carrying ballot 1000
      const attacks: Intruder[] = [
        new Intruder(t2.port, { tls: { ca: pki.ca, pem: pki.foreign } }), // another CA, claims r3
        new Intruder(t2.port, { tls: { ca: pki.ca, pem: pki.wrongName } }), // good CA, cert r9, claims r3
        new Intruder(t2.port, { tls: { ca: pki.ca, pem: pki.wrongName } }), // good CA, cert r9, claims r9 (non-member)
        new Intruder(t2.port, { tls: { ca: pki.ca, pem: pki.good.r3! } }), // a real member r3 spoofing r1 and r9
      ];
      intruders.push(...attacks);
      const claims = ['r3', 'r3', 'r9', 'r3'];
      await Promise.all(attacks.map((a, i) => a.handshake([claims[i]!], 'r2')));
      attacks[0]!.send(acceptMsg('r3', 'r2', 1000, 2));
      attacks[1]!.send(acceptMsg('r3', 'r2', 1000, 2));
      attacks[2]!.send(acceptMsg('r9', 'r2', 1000, 2));
      attacks[3]!.send(acceptMsg('r1', 'r2', 1000, 2), acceptMsg('r9', 'r2', 1000, 2, 'r9'));
      await Promise.all(attacks.slice(0, 3).map((a) => a.closedP));
      await waitFor(() => t2.t.stats().spoofed === 2, 'the spoofs dropped');
      // the good leader goes on at ballot 5: would be nacked had any forged ballot 1000 landed
      prop.bus.send(acceptMsg('r1', 'r2', 5, 2));
      await waitFor(() => prop.got.filter((m) => m.type === 'accepted').length === 2, 'second accepted');
      expect(prop.got.map((m) => m.type)).toEqual(['accepted', 'accepted']);
      expect(acc.promised()).toEqual({ round: 5, leader: 'r1' });
      expect(acc.seen.map((m) => `${m.from}:${(m as { ballot: { round: number } }).ballot.round}`)).toEqual([
        'r1:5',
        'r1:5',
      ]);
      const s = t2.t.stats();
      expect(s.authFailures).toBeGreaterThanOrEqual(3);
      expect(s.notMembers).toBe(1);
    },
  );
});
