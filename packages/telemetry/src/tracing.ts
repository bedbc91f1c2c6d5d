import {
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
  ROOT_CONTEXT,
  SpanKind,
  TraceFlags,
  context,
  trace,
} from '@opentelemetry/api';
import type { Bus } from '@decree/bus';
import { commandCount, type Message, type ReplicaId, type Slot } from '@decree/protocol';

export interface InstrumentBusOptions {
  /** this replica's id: tells the leader's sends from its own receipts on the local path */
  replica: ReplicaId;
  /** defaults to trace.getTracer('@decree/telemetry') (a no-op until an SDK is registered) */
  tracer?: Tracer;
  /** fraction of submitted batches that start a trace, 0..1 (default 1; the SDK's sampler applies too) */
  ratio?: number;
  /** random source for the ratio (tests); default Math.random */
  random?: () => number;
  /** bound on the traced batches / slots remembered at once (default 4096) */
  maxTracked?: number;
}

const TRACEPARENT = 'traceparent';
const HEX_TRACE = /^[0-9a-f]{32}$/;
const HEX_SPAN = /^[0-9a-f]{16}$/;

/** W3C traceparent of a span context: `00-<trace id>-<span id>-<flags>`. */
export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** Parses a W3C traceparent; undefined when malformed (bad input never throws). */
export function parseTraceparent(v: string | undefined): SpanContext | undefined {
  if (typeof v !== 'string') return undefined;
  const parts = v.trim().split('-');
  if (parts.length < 4) return undefined;
  const [ver, traceId, spanId, flags] = parts as [string, string, string, string];
  if (
    ver.length !== 2 ||
    ver === 'ff' ||
    !HEX_TRACE.test(traceId) ||
    !HEX_SPAN.test(spanId) ||
    !/^[0-9a-f]{2}$/.test(flags)
  )
    return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  if (ver === '00' && parts.length !== 4) return undefined;
  return { traceId, spanId, traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
}

function inject(msg: Message, span: Span | SpanContext | undefined): void {
  if (!span || Object.isFrozen(msg)) return;
  const sc = 'spanContext' in span ? span.spanContext() : span;
  if (!trace.isSpanContextValid(sc)) return;
  (msg as { headers?: Record<string, string> }).headers = { ...msg.headers, [TRACEPARENT]: formatTraceparent(sc) };
}

function extract(msg: Message): Context | undefined {
  const sc = parseTraceparent(msg.headers?.[TRACEPARENT]);
  return sc ? trace.setSpanContext(ROOT_CONTEXT, sc) : undefined;
}

/** A bounded insertion-ordered map: the oldest entries go first (their spans end as 'dropped'). */
class Bounded<K, V> extends Map<K, V> {
  constructor(
    private readonly max: number,
    private readonly evict: (v: V) => void,
  ) {
    super();
  }
  override set(k: K, v: V): this {
    super.set(k, v);
    if (this.size > this.max) {
      const first = this.keys().next().value as K;
      const old = this.get(first)!;
      this.delete(first);
      this.evict(old);
    }
    return this;
  }
}

interface Batch {
  submit: Span;
  ctx: Context;
  /** the submit's item ids: first..last when consecutive (the replica numbers them so) */
  first: number;
  last: number;
  /** only when the ids are not consecutive: then each is in batchById */
  ids?: number[];
}
interface LeaderSlot {
  batch: Batch;
  accept: Span;
  apply?: Span;
}
interface FollowerSlot {
  accept: Span;
  ctx: Context;
  apply?: Span;
}

export interface BusInstrumentation {
  /** removes the tap and ends the spans still open */
  stop(): void;
  /** traced batches / slots currently remembered (tests) */
  readonly tracked: { batches: number; leaderSlots: number; followerSlots: number };
}

const endDropped = (s: Span | undefined) => {
  if (!s) return;
  s.setAttribute('decree.dropped', true);
  s.end();
};

/**
 * Traces command batches through the protocol from one replica's bus tap: `decree.submit` (the
 * batch, submit to reply) with children `decree.accept` (phase 2 on the leader), `decree.apply`
 * (decided to executed) and `decree.reply`; on every acceptor `decree.acceptor.accept`, then
 * `decree.chosen` and `decree.learner.apply`. The W3C traceparent travels in `msg.headers` of
 * submit, accept, learn, accepted and decide, so one trace joins the spans of all replicas.
 *
 * Only @opentelemetry/api is used: with no SDK registered spans are non-recording, nothing is
 * remembered and every message costs one switch on its type.
 */
export function instrumentBus(bus: Bus, opts: InstrumentBusOptions): BusInstrumentation {
  const self = opts.replica;
  const ratio = Math.max(0, Math.min(1, opts.ratio ?? 1));
  const random = opts.random ?? Math.random;
  const max = opts.maxTracked ?? 4096;
  const tracer = () => opts.tracer ?? trace.getTracer('@decree/telemetry');
  const attrs = { 'decree.replica': self };

  const batchById = new Bounded<number, Batch>(max * 8, () => {});
  const batches = new Set<Batch>();
  const leaderSlots = new Bounded<Slot, LeaderSlot>(max, (s) => {
    endDropped(s.accept);
    endDropped(s.apply);
  });
  const followerSlots = new Bounded<Slot, FollowerSlot>(max, (s) => {
    endDropped(s.accept);
    endDropped(s.apply);
  });
  let leaderDecided = 0;

  const finishBatch = (b: Batch) => {
    if (b.ids) for (const id of b.ids) batchById.delete(id);
    batches.delete(b);
    b.submit.end();
  };
  // a batch by any of its command ids: consecutive ids are a range (no per-command map entries, which
  // cost more than the spans for batches of thousands of commands); the traced batches open at once are few
  const findBatch = (id: number): Batch | undefined => {
    if (batches.size === 0) return undefined;
    const b = batchById.get(id);
    if (b) return b;
    for (const x of batches) if (!x.ids && id >= x.first && id <= x.last) return x;
    return undefined;
  };

  const onSubmit = (msg: Extract<Message, { type: 'submit' }>) => {
    if (msg.items.length === 0) return;
    if (ratio < 1 && random() >= ratio) return;
    const parent = extract(msg) ?? context.active();
    const span = tracer().startSpan(
      'decree.submit',
      {
        kind: SpanKind.PRODUCER,
        attributes: { ...attrs, 'decree.commands': msg.items.length, 'decree.first_id': msg.items[0]!.id },
      },
      parent,
    );
    if (!span.isRecording()) return; // no SDK, or not sampled: remember nothing
    const items = msg.items;
    const first = items[0]!.id;
    let consecutive = items[items.length - 1]!.id - first === items.length - 1;
    for (let i = 1; consecutive && i < items.length; i++) consecutive = items[i]!.id === first + i;
    const b: Batch = {
      submit: span,
      ctx: trace.setSpan(parent, span),
      first,
      last: first + items.length - 1,
      ...(consecutive ? {} : { ids: items.map((i) => i.id) }),
    };
    if (batches.size >= max) {
      const oldest = batches.values().next().value!;
      oldest.submit.setAttribute('decree.dropped', true);
      finishBatch(oldest);
    }
    batches.add(b);
    if (b.ids) for (const id of b.ids) batchById.set(id, b);
    inject(msg, span);
  };

  const onLeaderAccept = (msg: Extract<Message, { type: 'accept' }>) => {
    const known = leaderSlots.get(msg.slot);
    if (known) return inject(msg, known.accept);
    const v = msg.value;
    if (v.k !== 'batch' || v.origin !== self) return;
    const b = findBatch(v.firstId);
    if (!b) return;
    const accept = tracer().startSpan(
      'decree.accept',
      { attributes: { ...attrs, 'decree.slot': msg.slot, 'decree.commands': commandCount(v) } },
      b.ctx,
    );
    leaderSlots.set(msg.slot, { batch: b, accept });
    inject(msg, accept);
  };

  const onAcceptorAccept = (msg: Extract<Message, { type: 'accept' }>) => {
    if (followerSlots.has(msg.slot)) return;
    const parent = extract(msg);
    if (!parent) return;
    const accept = tracer().startSpan(
      'decree.acceptor.accept',
      { kind: SpanKind.CONSUMER, attributes: { ...attrs, 'decree.slot': msg.slot, 'decree.from': msg.from } },
      parent,
    );
    if (!accept.isRecording()) return;
    followerSlots.set(msg.slot, { accept, ctx: trace.setSpan(parent, accept) });
  };

  const onDecideSent = (msg: Extract<Message, { type: 'decide' }>) => {
    let first: Span | undefined;
    if (msg.upTo > leaderDecided) {
      for (const [slot, s] of leaderSlots) {
        if (slot > msg.upTo || s.apply) continue;
        s.accept.addEvent('chosen');
        s.accept.end();
        s.apply = tracer().startSpan('decree.apply', { attributes: { ...attrs, 'decree.slot': slot } }, s.batch.ctx);
        first ??= s.accept;
      }
      leaderDecided = msg.upTo;
    }
    if (!first) {
      for (const [slot, s] of leaderSlots)
        if (slot <= msg.upTo) {
          first = s.accept;
          break;
        }
    }
    inject(msg, first);
  };

  const onDecideReceived = (msg: Extract<Message, { type: 'decide' }>) => {
    let seen = false;
    for (const [slot, s] of followerSlots) {
      if (slot > msg.upTo || s.apply) continue;
      seen = true;
      if (!s.accept.isRecording()) continue;
      s.accept.end(); // the accepted reply went before; end at the latest now
      tracer()
        .startSpan('decree.chosen', { attributes: { ...attrs, 'decree.slot': slot, 'decree.up_to': msg.upTo } }, s.ctx)
        .end();
      s.apply = tracer().startSpan('decree.learner.apply', { attributes: { ...attrs, 'decree.slot': slot } }, s.ctx);
    }
    if (!seen) {
      // a learner that missed the accept still joins the trace the decide carries
      const parent = extract(msg);
      if (parent)
        tracer()
          .startSpan('decree.chosen', { attributes: { ...attrs, 'decree.up_to': msg.upTo } }, parent)
          .end();
    }
  };

  const onProgress = (executedUpTo: Slot) => {
    for (const [slot, s] of followerSlots) {
      if (slot > executedUpTo || !s.apply) continue;
      s.apply.end();
      followerSlots.delete(slot);
    }
  };

  const onExecuted = (msg: Extract<Message, { type: 'executed' }>) => {
    const s = leaderSlots.get(msg.slot);
    const b = s?.batch ?? findBatch(msg.firstId);
    if (s) {
      if (!s.apply) s.accept.end();
      s.apply?.end();
      leaderSlots.delete(msg.slot);
    }
    if (!b) return;
    tracer()
      .startSpan(
        'decree.reply',
        { attributes: { ...attrs, 'decree.slot': msg.slot, 'decree.results': msg.results.length } },
        b.ctx,
      )
      .end();
    finishBatch(b);
  };

  const onAborted = (msg: Extract<Message, { type: 'aborted' }>) => {
    for (const id of msg.ids) {
      const b = findBatch(id);
      if (!b) continue;
      b.submit.setAttribute('decree.aborted', true);
      finishBatch(b);
    }
  };

  const off = bus.tap((msg, dir) => {
    switch (msg.type) {
      case 'submit':
        if (dir === 'local') onSubmit(msg);
        return;
      case 'accept':
        if (msg.from === self && dir !== 'in') onLeaderAccept(msg);
        if (dir !== 'out') onAcceptorAccept(msg);
        return;
      case 'learn':
      case 'accepted': {
        if (dir === 'in') return;
        const f = followerSlots.get(msg.slot);
        if (f) {
          if (msg.type === 'accepted') f.accept.addEvent('accepted');
          inject(msg, f.accept);
        }
        return;
      }
      case 'decide':
        if (msg.from === self && dir !== 'in') onDecideSent(msg);
        if (dir !== 'out') onDecideReceived(msg);
        return;
      case 'progress':
        if (followerSlots.size) onProgress(msg.executedUpTo);
        return;
      case 'executed':
        if (batches.size || leaderSlots.size) onExecuted(msg);
        return;
      case 'aborted':
        if (batches.size) onAborted(msg);
        return;
      default:
        return;
    }
  });

  return {
    stop() {
      off();
      for (const s of leaderSlots.values()) {
        endDropped(s.accept);
        endDropped(s.apply);
      }
      for (const s of followerSlots.values()) {
        endDropped(s.accept);
        endDropped(s.apply);
      }
      for (const b of [...batches]) finishBatch(b);
      leaderSlots.clear();
      followerSlots.clear();
    },
    get tracked() {
      return { batches: batches.size, leaderSlots: leaderSlots.size, followerSlots: followerSlots.size };
    },
  };
}
