/**
 * Length-prefixed framing: every frame is a big-endian u32 payload length followed by the payload.
 * The reader never buffers more than one frame plus one socket chunk, and a length above the
 * current maximum stops it (the caller closes the connection).
 */

export const FRAME_HEADER_BYTES = 4;

export type FrameHandler = (payload: Buffer) => boolean;

export class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  /** set once the reader has stopped (oversized frame or the handler asked to stop) */
  dead = false;

  /**
   * @param maxFrameBytes largest accepted payload; may be changed at any time (e.g. after a handshake)
   * @param onFrame called for every complete payload; return false to stop reading
   * @param onOversize called once with the announced length of a frame above the maximum
   */
  constructor(
    public maxFrameBytes: number,
    private readonly onFrame: FrameHandler,
    private readonly onOversize: (length: number) => void,
  ) {}

  /** bytes held for a frame not yet complete */
  get buffered(): number {
    return this.have;
  }

  push(chunk: Buffer): void {
    if (this.dead || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.have += chunk.length;
    // each frame in turn: a view when it lies in one chunk, else its bytes copied once into a buffer
    // of its own (never the bytes after it: issue #19, a follower's garbage of external memory)
    while (this.have >= FRAME_HEADER_BYTES) {
      const len = this.peekLength();
      if (len > this.maxFrameBytes) return this.stop(len);
      if (this.have < FRAME_HEADER_BYTES + len) return;
      const payload = this.take(FRAME_HEADER_BYTES + len).subarray(FRAME_HEADER_BYTES);
      if (!this.onFrame(payload)) {
        this.dead = true;
        this.chunks = [];
        this.have = 0;
        return;
      }
      if (this.dead) return;
    }
  }

  /** the big-endian u32 at the front (at least FRAME_HEADER_BYTES are held) */
  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= FRAME_HEADER_BYTES) return first.readUInt32BE(0);
    let v = 0;
    let k = 0;
    for (let c = 0; k < FRAME_HEADER_BYTES; c++) {
      const b = this.chunks[c]!;
      for (let i = 0; i < b.length && k < FRAME_HEADER_BYTES; i++, k++) v = v * 256 + b[i]!;
    }
    return v;
  }

  /** removes the first n bytes held (n <= have): a view of the first chunk, or a copy across chunks */
  private take(n: number): Buffer {
    this.have -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  private stop(length: number): void {
    this.dead = true;
    this.chunks = [];
    this.have = 0;
    this.onOversize(length);
  }
}

/** One frame: header + payload, in a new buffer. */
export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Many frames concatenated into one buffer (one socket write). */
export function frames(payloads: readonly Uint8Array[], from = 0, to = payloads.length): Buffer {
  let total = 0;
  for (let i = from; i < to; i++) total += FRAME_HEADER_BYTES + payloads[i]!.length;
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (let i = from; i < to; i++) {
    const p = payloads[i]!;
    out.writeUInt32BE(p.length, off);
    out.set(p, off + FRAME_HEADER_BYTES);
    off += FRAME_HEADER_BYTES + p.length;
  }
  return out;
}
