import { afterEach, describe, expect, it } from 'vitest';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Bus } from '@decree/bus';
import { SimCluster } from '@decree/testkit';
import { instrumentBus } from '../src/index.ts';
import { makeInspector, registerTracing } from '../src/sdk.ts';

describe('sdk entry point', () => {
  let shutdown: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await shutdown?.();
    shutdown = undefined;
  });

  it('registerTracing makes the default (global) tracer of instrumentBus record', async () => {
    const exporter = new InMemorySpanExporter();
    const t = registerTracing({ exporter, ratio: 1 });
    shutdown = () => t.shutdown();
    const c = await new SimCluster({ n: 3, seed: 9 }).start();
    for (const id of c.ids) instrumentBus((c.nodes.get(id) as unknown as { bus: Bus }).bus, { replica: id });
    c.waitForLeader();
    await c.submitAndWait(new TextEncoder().encode('a'));
    c.run(100);
    await c.stop();
    await t.forceFlush(); // the batch processor exports (shutdown would clear the in-memory exporter)
    const names = new Set(exporter.getFinishedSpans().map((s) => s.name));
    expect(names).toContain('decree.submit');
    expect(names).toContain('decree.learner.apply');
  });

  it('makeInspector falls back to logging state changes when @statelyai/inspect is absent', async () => {
    const logs: { msg: string; obj: any }[] = [];
    const insp = await makeInspector((msg, obj) => logs.push({ msg, obj }));
    expect(insp.mode).toBe('log'); // the package is not a dependency of the repo
    const c = await new SimCluster({ n: 3, seed: 4, inspect: insp.inspect }).start();
    c.waitForLeader();
    await c.stop();
    const changes = logs.filter((l) => l.msg === 'inspect: state');
    // the proposer leads in substates ({ leading: 'steady' }, …)
    const leading = (to: unknown) => to === 'leading' || (typeof to === 'object' && to !== null && 'leading' in to);
    expect(changes.some((l) => l.obj.machine === 'proposer' && leading(l.obj.to))).toBe(true);
    expect(changes.some((l) => l.obj.machine === 'elector')).toBe(true);
    // only changes: no two consecutive identical states of one actor
    const lastBy = new Map<string, string>();
    for (const l of changes) {
      const v = JSON.stringify(l.obj.to);
      expect(lastBy.get(l.obj.actor)).not.toBe(v);
      lastBy.set(l.obj.actor, v);
    }
  });
});
