/**
 * The handshake step function on its own: no sockets. Two ends run against each other (each end's
 * bytes cut into frames and fed to the other), or one end is fed hand-made frames. Table-driven:
 * every refusal code is reached on both sides, a listener's code crosses the wire to the dialler,
 * and the bytes are those the TCP transport wrote before packages/wire existed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FrameReader,
  HandshakeError,
  REFUSAL_CODES,
  STATUS_OK,
  STATUS_REFUSED,
  STATUS_VERSION,
  decodeWelcome,
  encodeAuth,
  encodeHello,
  encodeWelcome,
  frame,
  handshakeProof,
  handshakeStep,
  startDialler,
  startListener,
  type DiallerConfig,
  type HandshakeOutcome,
  type HandshakeState,
  type ListenerConfig,
  type RefusalCode,
} from '../src/index.ts';

const DN = new Uint8Array(16).fill(0xa1);
const LN = new Uint8Array(16).fill(0xb2);
const SECRET = Buffer.from('s3cret');

const listener = (o: Partial<ListenerConfig> = {}): ListenerConfig => ({
  selfIds: ['b'],
  versions: { min: 1, max: 1 },
  nonce: LN,
  remote: '10.0.0.1:4000',
  ...o,
});
const dialler = (o: Partial<DiallerConfig> = {}): DiallerConfig => ({
  selfIds: ['a'],
  versions: { min: 1, max: 1 },
  nonce: DN,
  to: 'b',
  label: 'b@10.0.0.2:7001',
  ...o,
});

/** The payloads of the frames in `bytes`. */
function payloads(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const r = new FrameReader(
    1 << 20,
    (p) => (out.push(Buffer.from(p)), true),
    () => {},
  );
  r.push(bytes);
  expect(r.buffered).toBe(0);
  return out;
}

interface End {
  state: HandshakeState;
  outcome: HandshakeOutcome;
  /** bytes this end wrote */
  wrote: Buffer[];
}

/** Feeds `bytes` to an end until it is done (later frames are not the handshake's); returns its writes. */
function feed(end: End, bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (const payload of payloads(bytes)) {
    if (end.state.phase === 'done') break;
    const step = handshakeStep(end.state, { type: 'frame', payload });
    end.state = step.state;
    end.outcome = step.outcome;
    if (step.send) {
      end.wrote.push(step.send);
      out.push(step.send);
    }
  }
  return out;
}

/** Both ends against each other until nothing more is written. */
function converse(d: DiallerConfig, l: ListenerConfig): { d: End; l: End } {
  const start = startDialler(d);
  const de: End = { state: start.state, outcome: start.outcome, wrote: [start.send!] };
  const le: End = { state: startListener(l), outcome: { kind: 'pending' }, wrote: [] };
  let toL = [start.send!];
  let toD: Buffer[] = [];
  while (toL.length || toD.length) {
    toD = toD.concat(...toL.map((b) => feed(le, b)));
    toL = [];
    toL = toL.concat(...toD.map((b) => feed(de, b)));
    toD = [];
  }
  return { d: de, l: le };
}

/** A listener fed hand-made frames. */
function listenerGets(l: ListenerConfig, ...frames: Uint8Array[]): End {
  const e: End = { state: startListener(l), outcome: { kind: 'pending' }, wrote: [] };
  for (const f of frames) feed(e, frame(f));
  return e;
}

/** A dialler (its hello sent) fed hand-made frames. */
function diallerGets(d: DiallerConfig, ...frames: Uint8Array[]): End {
  const s = startDialler(d);
  const e: End = { state: s.state, outcome: s.outcome, wrote: [s.send!] };
  for (const f of frames) feed(e, frame(f));
  return e;
}

const hello = (o: Partial<Parameters<typeof encodeHello>[0]> = {}) =>
  encodeHello({ minVersion: 1, maxVersion: 1, ids: ['a'], to: 'b', nonce: DN, ...o });
const refusal = (o: HandshakeOutcome) => (o.kind === 'refused' ? o.refusal : undefined);
const okWelcome = (o: Partial<Parameters<typeof encodeWelcome>[0]> = {}) =>
  encodeWelcome({ status: STATUS_OK, version: 1, ids: ['b'], nonce: LN, ...o });
const listenerProof = (secret: Uint8Array = SECRET) => handshakeProof(secret, 'decree/listener', DN, LN, ['a'], ['b']);

describe('handshake: both ends agree', () => {
  it('without a secret: hello, welcome, established on both sides with the same session', () => {
    const { d, l } = converse(dialler(), listener());
    /** the session with its nonces as plain arrays (one end decoded them from MessagePack) */
    const plain = (o: HandshakeOutcome) =>
      o.kind === 'established'
        ? { ...o.session, diallerNonce: [...o.session.diallerNonce], listenerNonce: [...o.session.listenerNonce] }
        : o;
    expect(plain(d.outcome)).toEqual({ version: 1, remoteIds: ['b'], diallerNonce: [...DN], listenerNonce: [...LN] });
    expect(plain(l.outcome)).toEqual({ version: 1, remoteIds: ['a'], diallerNonce: [...DN], listenerNonce: [...LN] });
    expect(l.state.label).toBe('a@10.0.0.1:4000');
  });

  it('with a secret: both prove it (hello, welcome + proof, auth), then established', () => {
    const { d, l } = converse(dialler({ secret: SECRET }), listener({ secret: SECRET }));
    expect(d.outcome.kind).toBe('established');
    expect(l.outcome.kind).toBe('established');
    expect(d.wrote.length).toBe(2); // hello, auth
    expect(l.wrote.length).toBe(1); // welcome
  });

  it('negotiates the highest common version (rolling upgrade)', () => {
    const { d, l } = converse(dialler({ versions: { min: 1, max: 3 } }), listener({ versions: { min: 2, max: 5 } }));
    expect(d.outcome).toMatchObject({ kind: 'established', session: { version: 3 } });
    expect(l.outcome).toMatchObject({ kind: 'established', session: { version: 3 } });
  });

  it('writes the very bytes the TCP transport wrote before packages/wire (golden, from 5c46658)', () => {
    const golden = {
      hello: '0000002e44435245010001000183a369647391a161a2746fa162a56e6f6e6365c410a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1',
      welcome: '00000028444352450200000182a369647391a162a56e6f6e6365c410b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2',
      welcomeS:
        '00000050444352450200000183a369647391a162a56e6f6e6365c410b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2' +
        'a570726f6f66c42010c0c62409868093d78968940c3478767f4b1a1adf328c6f11cb1285bdcd81dd',
      auth: '0000002e444352450381a570726f6f66c4203cba247fdd5739c627ed55469ba24a595ea2681e1c403955d7115dd852654db1',
    };
    const plain = converse(dialler(), listener());
    expect(plain.d.wrote.map((b) => b.toString('hex'))).toEqual([golden.hello]);
    expect(plain.l.wrote.map((b) => b.toString('hex'))).toEqual([golden.welcome]);
    const secret = converse(dialler({ secret: SECRET }), listener({ secret: SECRET }));
    expect(secret.d.wrote.map((b) => b.toString('hex'))).toEqual([golden.hello, golden.auth]);
    expect(secret.l.wrote.map((b) => b.toString('hex'))).toEqual([golden.welcomeS]);
  });

  it("an older peer's refusal (no code) still reads: the code comes from the status byte", () => {
    // bytes of refusals written before the code existed (5c46658): status 1 and status 2, error 'old'
    const oldVersion = Buffer.from('0000001a444352450201000082a369647391a162a56572726f72a36f6c64', 'hex');
    const oldRefused = Buffer.from('0000001a444352450202000082a369647391a162a56572726f72a36f6c64', 'hex');
    for (const [bytes, code] of [
      [oldVersion, 'VERSION'],
      [oldRefused, 'REFUSED'],
    ] as const) {
      const s = startDialler(dialler());
      const e: End = { state: s.state, outcome: s.outcome, wrote: [] };
      feed(e, bytes);
      const message = 'handshake refused by b@10.0.0.2:7001: old';
      expect(refusal(e.outcome)).toMatchObject({ code, by: 'remote', reason: 'old', message });
    }
  });
});

interface Row {
  code: RefusalCode;
  /** the end that refuses */
  side: 'listener' | 'dialler';
  what: string;
  run: () => { d?: End; l?: End };
  /** the refusal's message */
  message: string | RegExp;
  /** a listener's refusal the dialler can read (its code then arrives at the dialler) */
  frame?: boolean;
}

const rows: Row[] = [
  // ---- the listener refuses
  {
    code: 'VERSION',
    side: 'listener',
    what: 'no version in common',
    frame: true,
    run: () => converse(dialler({ versions: { min: 2, max: 3 } }), listener()),
    message: 'peer a speaks protocol versions 2..3, this replica (b) supports 1..1',
  },
  {
    code: 'BAD_FRAME',
    side: 'listener',
    what: 'a hello with a bad magic',
    run: () => ({ l: listenerGets(listener(), Buffer.from('XXXX\x01\x00\x01\x00\x01', 'latin1')) }),
    message: 'hello: bad magic (not a Decree peer) from inbound 10.0.0.1:4000',
  },
  {
    code: 'BAD_FRAME',
    side: 'listener',
    what: 'a hello whose body is not { ids, to }',
    run: () => ({ l: listenerGets(listener(), Buffer.concat([hello().subarray(0, 9), Buffer.from([0xc0])])) }),
    message: /^hello: body must be/,
  },
  {
    code: 'WRONG_REPLICA',
    side: 'listener',
    what: 'the hello names a replica not hosted here',
    frame: true,
    run: () => converse(dialler({ to: 'c' }), listener()),
    message: 'a dialled replica c, but this process hosts b',
  },
  {
    code: 'AUTH',
    side: 'listener',
    what: 'a hello without a challenge to a listener with a secret',
    frame: true,
    run: () => ({ l: listenerGets(listener({ secret: SECRET }), hello({ ids: ['x'], nonce: undefined })) }),
    message: 'x sent no challenge, but this replica (b) requires shared-secret authentication',
  },
  {
    code: 'AUTH',
    side: 'listener',
    what: 'a forged proof in the auth frame',
    run: () => ({
      l: listenerGets(listener({ secret: SECRET }), hello(), encodeAuth(new Uint8Array(32))),
    }),
    message: 'a@10.0.0.1:4000 failed the shared-secret check (different secret?)',
  },
  {
    code: 'AUTH',
    side: 'listener',
    what: 'a message where the auth frame should be',
    run: () => ({
      l: listenerGets(listener({ secret: SECRET }), hello(), Buffer.from([0x80])),
    }),
    message: 'a@10.0.0.1:4000 failed the shared-secret check (no proof)',
  },
  {
    code: 'NOT_MEMBER',
    side: 'listener',
    what: 'a dialler that is not a member',
    frame: true,
    run: () => converse(dialler({ selfIds: ['a', 'z'] }), listener({ isMember: (id) => id !== 'z' })),
    message: 'refused a,z: z is not a member of this cluster',
  },
  {
    code: 'TLS_NAME',
    side: 'listener',
    what: "the dialler's certificate names someone else",
    frame: true,
    run: () => converse(dialler(), listener({ peerNames: ['r3', 'decree:r3'] })),
    message: 'refused a: the certificate names r3,decree:r3, not a',
  },
  {
    code: 'REFUSED',
    side: 'listener',
    what: "the host's own check (admit)",
    frame: true,
    run: () => {
      const admit = (ids: readonly string[]) => ({
        code: 'REFUSED' as const,
        reason: `${ids[0]} must dial the other way`,
      });
      return converse(dialler(), listener({ admit }));
    },
    message: 'refused a: a must dial the other way',
  },
  {
    code: 'TIMEOUT',
    side: 'listener',
    what: 'no hello in time',
    run: () => {
      const st = handshakeStep(startListener(listener()), { type: 'timeout', afterMs: 100 });
      return { l: { state: st.state, outcome: st.outcome, wrote: [] } };
    },
    message: 'no hello from inbound 10.0.0.1:4000 within 100 ms',
  },
  // ---- the dialler refuses
  {
    code: 'VERSION',
    side: 'dialler',
    what: 'the listener chose a version outside our range',
    run: () => ({ d: diallerGets(dialler(), okWelcome({ version: 7 })) }),
    message: 'b@10.0.0.2:7001 chose protocol version 7, this replica supports 1..1',
  },
  {
    code: 'BAD_FRAME',
    side: 'dialler',
    what: 'not a welcome (an HTTP server, say)',
    run: () => ({ d: diallerGets(dialler(), Buffer.from('HTTP/1.1 400 Bad Request')) }),
    message: 'welcome: bad magic (not a Decree peer) from b@10.0.0.2:7001',
  },
  {
    code: 'WRONG_REPLICA',
    side: 'dialler',
    what: 'the listener does not answer for the replica dialled',
    run: () => ({ d: diallerGets(dialler(), okWelcome({ ids: ['z'] })) }),
    message: 'refused listener b@10.0.0.2:7001 (z): it does not answer for b',
  },
  {
    code: 'AUTH',
    side: 'dialler',
    what: 'different secrets',
    run: () => converse(dialler({ secret: Buffer.from('one') }), listener({ secret: Buffer.from('two') })),
    message: 'b@10.0.0.2:7001 failed the shared-secret check (different secret?)',
  },
  {
    code: 'AUTH',
    side: 'dialler',
    what: 'a secret at the listener only',
    run: () => converse(dialler(), listener({ secret: SECRET })),
    message: 'b@10.0.0.2:7001 requires a shared secret and none is configured here',
  },
  {
    code: 'AUTH',
    side: 'dialler',
    what: 'a secret at the dialler only',
    run: () => converse(dialler({ secret: SECRET }), listener()),
    message: 'b@10.0.0.2:7001 did not prove the shared secret (is one configured there?)',
  },
  {
    code: 'NOT_MEMBER',
    side: 'dialler',
    what: 'a listener that is not a member',
    run: () => converse(dialler({ isMember: (id) => id !== 'b' }), listener()),
    message: 'refused listener b@10.0.0.2:7001 (b): b is not a member of this cluster',
  },
  {
    code: 'TLS_NAME',
    side: 'dialler',
    what: "the listener's certificate names someone else",
    run: () => converse(dialler({ peerNames: [] }), listener()),
    message: 'refused listener b@10.0.0.2:7001 (b): the certificate names nothing, not b',
  },
  {
    code: 'REFUSED',
    side: 'dialler',
    what: "the host's own check (admit)",
    run: () => converse(dialler({ admit: () => ({ code: 'REFUSED', reason: 'not today' }) }), listener()),
    message: 'refused listener b@10.0.0.2:7001 (b): not today',
  },
  {
    code: 'TIMEOUT',
    side: 'dialler',
    what: 'no welcome in time',
    run: () => {
      const start = startDialler(dialler());
      const st = handshakeStep(start.state, { type: 'timeout', afterMs: 250 });
      return { d: { state: st.state, outcome: st.outcome, wrote: [start.send!] } };
    },
    message: 'no welcome from b@10.0.0.2:7001 within 250 ms',
  },
];

describe('handshake: every refusal code, both sides', () => {
  const reached = new Set<string>();

  it.each(rows.map((r) => [`${r.side} ${r.code}: ${r.what}`, r] as const))('%s', (_, row) => {
    const { d, l } = row.run();
    const end = row.side === 'listener' ? l! : d!;
    const r = refusal(end.outcome);
    expect(r, 'refused').toBeDefined();
    expect(r).toMatchObject({ code: row.code, by: 'local', side: row.side });
    if (typeof row.message === 'string') expect(r!.message).toBe(row.message);
    else expect(r!.message).toMatch(row.message);
    expect(end.state.phase).toBe('done');
    expect(() => handshakeStep(end.state, { type: 'timeout', afterMs: 1 })).toThrow(HandshakeError);
    if (row.side === 'listener') {
      const last = l!.wrote.at(-1);
      if (row.frame) {
        // a refusal the dialler can read: status byte, error text, and the code
        const w = decodeWelcome(payloads(last!)[0]!);
        const status = row.code === 'VERSION' ? STATUS_VERSION : STATUS_REFUSED;
        expect(w).toMatchObject({ status, error: r!.reason, code: row.code });
        if (d) {
          // and the dialler learns the code from the wire, never from the text
          expect(refusal(d.outcome)).toMatchObject({ code: row.code, by: 'remote', reason: r!.reason });
          expect(refusal(d.outcome)!.message).toBe(`handshake refused by b@10.0.0.2:7001: ${r!.reason}`);
        }
      } else {
        expect(l!.wrote.filter((b) => decodeWelcome(payloads(b)[0]!).status !== STATUS_OK)).toEqual([]);
      }
    } else {
      // a dialler's refusal is local: it closes, writing nothing after its hello (and auth)
      expect(d!.wrote.length).toBe(1);
    }
    reached.add(`${row.side}:${row.code}`);
  });

  it('reaches all of them', () => {
    const all = REFUSAL_CODES.flatMap((c) => [`listener:${c}`, `dialler:${c}`]);
    expect([...reached].sort()).toEqual(all.sort());
  });
});

describe('handshake: random bytes', () => {
  const secretOpt = fc.option(fc.uint8Array({ minLength: 1, maxLength: 8 }), { nil: undefined });
  const validFrames = [
    hello(),
    okWelcome(),
    okWelcome({ proof: listenerProof() }),
    encodeWelcome({ status: STATUS_REFUSED, version: 0, ids: ['b'], error: 'no', code: 'AUTH' }),
    encodeAuth(new Uint8Array(32)),
  ];
  /** random bytes, or a valid handshake frame with a few bytes changed */
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 120 }),
    fc
      .tuple(fc.constantFrom(...validFrames), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }))
      .map(([f, muts]) => {
        const b = Buffer.from(f);
        for (const [at, v] of muts) if (b.length) b[at % b.length] = v;
        return new Uint8Array(b);
      }),
  );

  it('never throw from a step: every outcome is pending, established or a typed refusal', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        secretOpt,
        fc.array(input, { maxLength: 4 }),
        fc.option(fc.nat(2000)),
        (asListener, secret, frames, timeout) => {
          let state: HandshakeState = asListener
            ? startListener(listener(secret ? { secret } : {}))
            : startDialler(dialler(secret ? { secret } : {})).state;
          const steps: Array<{ type: 'frame'; payload: Uint8Array } | { type: 'timeout'; afterMs: number }> =
            frames.map((payload) => ({ type: 'frame' as const, payload }));
          if (timeout !== null) steps.push({ type: 'timeout', afterMs: timeout });
          for (const input of steps) {
            if (state.phase === 'done') {
              expect(() => handshakeStep(state, input)).toThrow(HandshakeError);
              break;
            }
            let step;
            try {
              step = handshakeStep(state, input);
            } catch (e) {
              throw new Error(`step threw ${(e as Error).name}: ${(e as Error).message}`);
            }
            state = step.state;
            const o = step.outcome;
            expect(['pending', 'established', 'refused']).toContain(o.kind);
            if (o.kind === 'refused') {
              expect(REFUSAL_CODES).toContain(o.refusal.code);
              expect(o.refusal.message).not.toMatch(/\n/);
              expect(state.phase).toBe('done');
            }
            // with a secret, nobody who does not hold it gets in
            if (secret && o.kind === 'established') throw new Error('established without the secret');
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('random bytes through the frame reader into a listener never throw either', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(300), { maxLength: 5 }), (bytes, cuts) => {
        let state: HandshakeState = startListener(listener({ secret: SECRET }));
        const reader = new FrameReader(
          64 * 1024,
          (payload) => {
            if (state.phase === 'done') return false;
            const step = handshakeStep(state, { type: 'frame', payload });
            state = step.state;
            expect(step.outcome.kind).not.toBe('established');
            return step.outcome.kind === 'pending';
          },
          () => {}, // an oversized frame: the transport closes (a protocol error of its own)
        );
        let at = 0;
        for (const c of [...cuts.sort((x, y) => x - y), bytes.length]) {
          reader.push(Buffer.from(bytes.subarray(at, Math.max(at, c))));
          at = Math.max(at, c);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses bad configurations with a TypeError', () => {
    expect(() => startListener(listener({ versions: { min: 3, max: 2 } }))).toThrow(TypeError);
    expect(() => startDialler(dialler({ selfIds: [] }))).toThrow(TypeError);
    expect(() => startDialler(dialler({ secret: new Uint8Array(0) }))).toThrow(TypeError);
  });
});
