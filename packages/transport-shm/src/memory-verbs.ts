import { randomBytes, randomInt } from 'node:crypto';
import {
  frameBytes,
  type NativeRdmaEndpoint,
  type RdmaDevice,
  type RdmaEndpointOptions,
  type RdmaPeerInfo,
  type RingStats,
} from '@decree/rdma-transport';
import type { RdmaVerbs } from './verbs.ts';

/** An error shaped like the addon's (a message and a `code`). */
function verbsError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}

const RING_HEADER_BYTES = 4096;
const emptyStats = (): RingStats => ({ frames: 0, bytes: 0, torn: 0, seqGaps: 0, full: 0, pads: 0 });

/** One "host" of a MemoryFabric: a verbs layer with its own LID and GID and the endpoints it made. */
export interface MemoryHost extends RdmaVerbs {
  readonly name: string;
  readonly lid: number;
  readonly gid: Uint8Array;
  /** the endpoints this host created and has not closed */
  readonly endpoints: ReadonlySet<MemoryEndpoint>;
  /** the host dies: every one of its queue pairs is destroyed at once (a peer's next write to them fails) */
  crash(): void;
}

/**
 * An in-memory stand-in for an RDMA fabric, for tests: hosts (verbs layers) create endpoints whose
 * `localInfo()` is what a real queue pair reports (lid, gid, qpn, psn, rkey, addr, len) and whose
 * writes reach another endpoint only as a reliable-connected QP's would — the two QPs must be
 * connected to each other (qpn, psn, lid/gid both ways) and the writer must name the reader's rkey,
 * address and length. Anything else fails the write like RC does (retry counter exceeded, remote
 * access error) and puts the writer's QP in the error state. Frames are kept whole (no ring bytes):
 * the fake checks the wiring and flow control, not the native ring protocol.
 */
export class MemoryFabric {
  private readonly qps = new Map<number, MemoryEndpoint>();
  private nextQpn = 0x100 + randomInt(0x1000);
  private nextLid = 1;
  /** every connect() made on this fabric, in order: which queue pair was pointed at which */
  readonly connects: { host: string; qpn: number; role: 'reader' | 'writer'; remote: RdmaPeerInfo }[] = [];

  /** A verbs layer for one host (process). `devices: []` makes a host without an RDMA device. */
  host(name: string, o: { devices?: RdmaDevice[] } = {}): MemoryHost {
    const lid = this.nextLid++;
    const gid = new Uint8Array(16);
    gid.set([0xfe, 0x80], 0);
    gid.set(randomBytes(8), 8);
    const endpoints = new Set<MemoryEndpoint>();
    const devices = o.devices ?? [{ name: 'memfab0', guid: '0000000000000001', nodeType: 'ca', transport: 'memory' }];
    const host: MemoryHost = {
      name,
      lid,
      gid,
      endpoints,
      listDevices: () => devices.map((d) => ({ ...d })),
      createEndpoint: (options: RdmaEndpointOptions): NativeRdmaEndpoint => {
        if (devices.length === 0)
          throw verbsError('ENODEV', 'no RDMA device found (ibv_get_device_list returned 0 devices)');
        const dev = options.device ? devices.find((d) => d.name === options.device) : devices[0];
        if (!dev)
          throw verbsError(
            'ENODEV',
            `no RDMA device named "${options.device}" (ibv_get_device_list returned ${devices.length} devices)`,
          );
        const ep = new MemoryEndpoint(this, host, dev.name, options, this.nextQpn++ & 0xffffff);
        this.qps.set(ep.qpn, ep);
        endpoints.add(ep);
        return ep;
      },
      crash() {
        for (const ep of [...endpoints]) ep.close();
      },
    };
    return host;
  }

  /** the live endpoint with this queue-pair number */
  endpoint(qpn: number): MemoryEndpoint | undefined {
    return this.qps.get(qpn);
  }

  /** puts a queue pair in the error state, as a broken link would: its next write or poll fails */
  breakQp(qpn: number, why = 'transport retry counter exceeded'): void {
    const ep = this.qps.get(qpn);
    if (ep) ep.error = why;
  }

  /** @internal */
  forget(ep: MemoryEndpoint): void {
    if (this.qps.get(ep.qpn) === ep) this.qps.delete(ep.qpn);
  }
}

const sameGid = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export class MemoryEndpoint implements NativeRdmaEndpoint {
  readonly role: 'reader' | 'writer';
  readonly capacity: number;
  readonly len: number;
  readonly maxPayload: number;
  readonly psn = randomInt(0x1000000);
  readonly rkey = randomBytes(4).readUInt32LE(0);
  readonly addr = (randomBytes(8).readBigUInt64LE(0) & 0x00007ffffffff000n) | 0x1000n;
  remote: RdmaPeerInfo | undefined;
  closed = false;
  /** set when the queue pair is in the error state: the reason its next write fails */
  error: string | undefined;
  /** reader: frames written into this ring and not polled yet, and their ring bytes */
  private inbox: Buffer[] = [];
  private inflight = 0;
  private readonly st = emptyStats();

  constructor(
    private readonly fabric: MemoryFabric,
    readonly host: MemoryHost,
    readonly device: string,
    o: RdmaEndpointOptions,
    readonly qpn: number,
  ) {
    this.role = o.role;
    this.capacity = o.capacity ?? 1 << 20;
    if (this.capacity < 4096 || (this.capacity & (this.capacity - 1)) !== 0)
      throw verbsError('EINVAL', 'ring capacity must be a power of two between 4096 and 4 GiB');
    this.len = RING_HEADER_BYTES + this.capacity;
    this.maxPayload = this.capacity / 4 - 16;
  }

  private live(): void {
    if (this.closed) throw verbsError('ECLOSED', 'RDMA endpoint is closed');
  }

  localInfo(): RdmaPeerInfo {
    this.live();
    return {
      lid: this.host.lid,
      qpn: this.qpn,
      psn: this.psn,
      rkey: this.rkey,
      addr: this.addr,
      len: this.len,
      gid: new Uint8Array(this.host.gid),
      device: this.device,
    };
  }

  connect(remote: RdmaPeerInfo): void {
    this.live();
    if (remote.len !== this.len) throw verbsError('EINVAL', `the peer's ring is ${remote.len} bytes, ours ${this.len}`);
    if (this.remote)
      throw verbsError('EVERBS', 'ibv_modify_qp(RTR) failed: Invalid argument (the queue pair is connected already)');
    this.remote = { ...remote, gid: new Uint8Array(remote.gid) };
    this.fabric.connects.push({ host: this.host.name, qpn: this.qpn, role: this.role, remote: this.remote });
  }

  /** The endpoint our writes reach, or why they would not (as RC reports it). */
  private target(): MemoryEndpoint {
    const r = this.remote!;
    const t = this.fabric.endpoint(r.qpn);
    // no QP answers at that address, or it is not connected back to us: no acks, the retries run out
    const fail = (why: string) => {
      this.error = why;
      return verbsError('EVERBS', `RDMA write failed: ${why}`);
    };
    if (!t || t.closed || t.host.lid !== r.lid || !sameGid(t.host.gid, r.gid))
      throw fail('transport retry counter exceeded');
    if (
      !t.remote ||
      t.remote.qpn !== this.qpn ||
      t.remote.lid !== this.host.lid ||
      !sameGid(t.remote.gid, this.host.gid) ||
      t.remote.psn !== this.psn ||
      r.psn !== t.psn
    )
      throw fail('transport retry counter exceeded');
    if (t.role !== 'reader' || r.rkey !== t.rkey || r.addr !== t.addr || r.len !== t.len)
      throw fail('remote access error');
    return t;
  }

  sendMany(frames: readonly Uint8Array[]): number {
    this.live();
    if (this.role === 'reader') throw verbsError('EROLE', 'this RDMA endpoint is a reader');
    for (const f of frames)
      if (f.length > this.maxPayload)
        throw verbsError(
          'ETOOBIG',
          `frame of ${f.length} bytes is larger than the ring's largest frame (${this.maxPayload} bytes)`,
        );
    if (!this.remote)
      throw verbsError('ENOTCONN', "RDMA endpoint is not connected (call connect with the peer's info first)");
    if (this.error) throw verbsError('EVERBS', `RDMA write failed: ${this.error}`);
    if (frames.length === 0) return 0;
    const t = this.target();
    let n = 0;
    for (const f of frames) {
      const fb = frameBytes(f.length);
      if (t.inflight + fb > t.capacity) break;
      t.inbox.push(Buffer.from(f));
      t.inflight += fb;
      this.st.frames++;
      this.st.bytes += f.length;
      n++;
    }
    if (n < frames.length) this.st.full++;
    return n;
  }

  poll(): Buffer[] {
    this.live();
    if (this.role === 'writer') throw verbsError('EROLE', 'this RDMA endpoint is a writer');
    if (this.error) throw verbsError('EVERBS', `RDMA write failed: ${this.error}`); // the head write-back fails
    const out = this.inbox.splice(0, 4096);
    for (const f of out) {
      this.inflight -= frameBytes(f.length);
      this.st.frames++;
      this.st.bytes += f.length;
    }
    return out;
  }

  stats(): RingStats {
    return { ...this.st };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbox = [];
    this.fabric.forget(this);
    (this.host.endpoints as Set<MemoryEndpoint>).delete(this);
  }
}
