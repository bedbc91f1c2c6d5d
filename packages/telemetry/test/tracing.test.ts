import { describe, expect, it } from 'vitest';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import type { Bus } from '@decree/bus';
import { SimCluster } from '@decree/testkit';
import { instrumentBus, parseTraceparent, formatTraceparent } from '../src/index.ts';

const enc = (s: string) => new TextEncoder().encode(s);

async function tracedCluster(opts: { ratio?: number; random?: () => number; sdk?: boolean } = {}) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const c = await new SimCluster({ n: 3, seed: 7 }).start();
  const inst = c.ids.map((id) =>
    instrumentBus((c.nodes.get(id) as unknown as { bus: Bus }).bus, {
      replica: id,
      ...(opts.sdk === false ? {} : { tracer: provider.getTracer('test') }),
      ...(opts.ratio !== undefined ? { ratio: opts.ratio } : {}),
      ...(opts.random ? { random: opts.random } : {}),
    }),
  );
  return { c, exporter, inst };
}

describe('instrumentBus tracing', () => {
  it("one trace joins a command's spans on all three replicas", async () => {
    const { c, exporter, inst } = await tracedCluster();
    const leader = c.waitForLeader();
    exporter.reset();
    const r = await c.submitAndWait(enc('x=1'));
    expect(r).toBeDefined();
    c.run(200); // followers apply
    const spans = exporter.getFinishedSpans();
    const submit = spans.filter((s) => s.name === 'decree.submit');
    expect(submit).toHaveLength(1);
    const traceId = submit[0]!.spanContext().traceId;
    const inTrace = spans.filter((s) => s.spanContext().traceId === traceId);
    const byReplica = new Map<string, Set<string>>();
    for (const s of inTrace) {
      const rep = String(s.attributes['decree.replica']);
      if (!byReplica.has(rep)) byReplica.set(rep, new Set());
      byReplica.get(rep)!.add(s.name);
    }
    expect([...byReplica.keys()].sort()).toEqual(['r1', 'r2', 'r3']);
    const lead = byReplica.get(leader)!;
    for (const n of [
      'decree.submit',
      'decree.accept',
      'decree.apply',
      'decree.reply',
      'decree.acceptor.accept',
      'decree.chosen',
    ])
      expect(lead).toContain(n);
    for (const f of c.ids.filter((i) => i !== leader)) {
      expect(byReplica.get(f)).toContain('decree.acceptor.accept');
      expect(byReplica.get(f)).toContain('decree.chosen');
      expect(byReplica.get(f)).toContain('decree.learner.apply');
    }
    // parents chain across replicas: a follower's acceptor span is a child of the leader's accept span
    const acceptIds = new Set(inTrace.filter((s) => s.name === 'decree.accept').map((s) => s.spanContext().spanId));
    const followerAccept = inTrace.find(
      (s) => s.name === 'decree.acceptor.accept' && s.attributes['decree.replica'] !== leader,
    )!;
    expect(acceptIds.has(followerAccept.parentSpanContext!.spanId)).toBe(true);
    // nothing left open
    for (const i of inst) expect(i.tracked).toEqual({ batches: 0, leaderSlots: 0, followerSlots: 0 });
    await c.stop();
  });

  it(
    'a batch of many commands (consecutive ids) and one ' + 'with gaps in its ids are both traced to their reply',
    async () => {
      const { c, exporter, inst } = await tracedCluster();
      const leader = c.waitForLeader();
      exporter.reset();
      // 100 commands in one submit (submitBatch numbers them consecutively)
      let done = false;
      void c
        .replica(leader)
        .submitBatch(Array.from({ length: 100 }, (_, i) => enc(`b${i}`)))
        .then(() => (done = true));
      for (let i = 0; i < 5000 && !done; i++) {
        c.run(1);
        await Promise.resolve();
      }
      expect(done).toBe(true);
      // a submit whose ids are not consecutive (sent on the leader's bus directly)
      const bus = (c.nodes.get(leader) as unknown as { bus: Bus }).bus;
      bus.send({
        type: 'submit',
        ring: 'default',
        from: leader,
        to: leader,
        items: [
          { id: 1_000_001, cmd: enc('g1') },
          { id: 1_000_005, cmd: enc('g2') },
        ],
      } as never);
      c.run(300);
      const spans = exporter.getFinishedSpans().filter((s) => s.attributes['decree.replica'] === leader);
      const submits = spans.filter((s) => s.name === 'decree.submit');
      expect(submits.map((s) => s.attributes['decree.commands'])).toEqual([100, 2]);
      for (const sub of submits) {
        const names = spans.filter((s) => s.spanContext().traceId === sub.spanContext().traceId).map((s) => s.name);
        expect(names).toContain('decree.accept');
        expect(names).toContain('decree.reply');
        expect(sub.attributes['decree.dropped']).toBeUndefined();
      }
      for (const i of inst) expect(i.tracked).toEqual({ batches: 0, leaderSlots: 0, followerSlots: 0 });
      await c.stop();
    },
  );

  it('sampling ratio 0 traces nothing and injects no headers', async () => {
    const { c, exporter, inst } = await tracedCluster({ ratio: 0 });
    c.waitForLeader();
    let headers = 0;
    for (const id of c.ids)
      (c.nodes.get(id) as unknown as { bus: Bus }).bus.tap((m) => void (m.headers?.traceparent && headers++));
    for (let i = 0; i < 5; i++) await c.submitAndWait(enc(`k${i}`));
    c.run(100);
    expect(exporter.getFinishedSpans().filter((s) => s.name.startsWith('decree.'))).toHaveLength(0);
    expect(headers).toBe(0);
    for (const i of inst) expect(i.tracked.batches).toBe(0);
    await c.stop();
  });

  it('ratio 0.5 traces about half of the batches (deterministic random)', async () => {
    let n = 0;
    const { c, exporter } = await tracedCluster({ ratio: 0.5, random: () => (n++ % 2 ? 0.9 : 0.1) });
    c.waitForLeader();
    for (let i = 0; i < 6; i++) await c.submitAndWait(enc(`k${i}`));
    c.run(100);
    expect(exporter.getFinishedSpans().filter((s) => s.name === 'decree.submit')).toHaveLength(3);
    await c.stop();
  });

  it('the SDK sampler applies too', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      sampler: new TraceIdRatioBasedSampler(0),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const c = await new SimCluster({ n: 3, seed: 3 }).start();
    const inst = c.ids.map((id) =>
      instrumentBus((c.nodes.get(id) as unknown as { bus: Bus }).bus, { replica: id, tracer: provider.getTracer('t') }),
    );
    c.waitForLeader();
    await c.submitAndWait(enc('a'));
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    for (const i of inst) expect(i.tracked.batches).toBe(0);
    await c.stop();
  });

  it('with no SDK registered nothing is recorded or injected', async () => {
    const { c, inst } = await tracedCluster({ sdk: false });
    c.waitForLeader();
    let headers = 0;
    for (const id of c.ids)
      (c.nodes.get(id) as unknown as { bus: Bus }).bus.tap((m) => void (m.headers?.traceparent && headers++));
    await c.submitAndWait(enc('a'));
    expect(headers).toBe(0);
    for (const i of inst) expect(i.tracked).toEqual({ batches: 0, leaderSlots: 0, followerSlots: 0 });
    await c.stop();
  });

  it('traceparent round-trips and rejects garbage', () => {
    const sc = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 };
    expect(formatTraceparent(sc)).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(parseTraceparent(formatTraceparent(sc))).toMatchObject(sc);
    for (const bad of [
      '',
      'x',
      '00-abc-def-01',
      '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    ])
      expect(parseTraceparent(bad)).toBeUndefined();
  });
});
