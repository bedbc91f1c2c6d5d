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
    if (this.have < FRAME_HEADER_BYTES) return;
    let first = this.chunks[0]!;
    if (first.length < FRAME_HEADER_BYTES) {
      first = Buffer.concat(this.chunks, this.have);
      this.chunks = [first];
    }
    const len = first.readUInt32BE(0);
    if (len > this.maxFrameBytes) return this.stop(len);
    if (this.have < FRAME_HEADER_BYTES + len) return;

    const buf = this.chunks.length === 1 ? first : Buffer.concat(this.chunks, this.have);
    let off = 0;
    while (buf.length - off >= FRAME_HEADER_BYTES) {
      const n = buf.readUInt32BE(off);
      if (n > this.maxFrameBytes) return this.stop(n);
      if (buf.length - off - FRAME_HEADER_BYTES < n) break;
      const payload = buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + n);
      off += FRAME_HEADER_BYTES + n;
      if (!this.onFrame(payload)) {
        this.dead = true;
        this.chunks = [];
        this.have = 0;
        return;
      }
      if (this.dead) return;
    }
    if (off === buf.length) {
      this.chunks = [];
      this.have = 0;
    } else {
      this.chunks = [buf.subarray(off)];
      this.have = buf.length - off;
    }
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
