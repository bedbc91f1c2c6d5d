import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/**
 * @decree/rdma-transport: a one-sided ring (length-prefixed frames, CRC32C + sequence number per
 * frame, tail published with release ordering, head published back for flow control) with two
 * backends: a file under /dev/shm mapped by two processes (ShmRing), and RDMA WRITE over an RC queue
 * pair (RdmaEndpoint, libibverbs). The layout and protocol: docs/decisions/0005-rdma-ring.md.
 */

export type VerbsBackend = 'ibverbs' | 'none';

export interface RingStats {
  /** frames written (writer) or delivered (reader) */
  frames: number;
  bytes: number;
  /** frames the reader refused: crc mismatch, impossible length, stale sequence number */
  torn: number;
  /** sequence numbers skipped between two delivered frames */
  seqGaps: number;
  /** sendMany calls that stopped early for lack of room */
  full: number;
  /** padding frames (the end of the data area skipped) */
  pads: number;
}

export interface PollOptions {
  /** empty checks spun before the poll thread starts sleeping (default 200) */
  spin?: number;
  /** the poll thread's sleep while JS drains a notification (µs, default 20) */
  minSleepUs?: number;
  /**
   * bound of one futex wait when idle (µs, default 20000): a writer's publish wakes the thread at
   * once; the bound only matters for a writer that never wakes (and for how soon stopPolling returns)
   */
  maxSleepUs?: number;
}

/** One end of a ring in a shared-memory file. The reader creates the file; the writer opens it. */
export interface NativeShmRing {
  /** writes a prefix of `frames` and publishes it; returns how many were written (fewer: the ring is full) */
  sendMany(frames: readonly Uint8Array[]): number;
  /** one frame; false when the ring is full */
  send(frame: Uint8Array): boolean;
  /** consumes the valid frames in [head, tail) (copies) and publishes the head */
  poll(maxFrames?: number, maxBytes?: number): Buffer[];
  /** a native thread watches the tail and calls `onData` (on the JS thread) when frames wait */
  startPolling(onData: () => void, options?: PollOptions): void;
  stopPolling(): void;
  /** whether the poll thread keeps the process alive (ref, the default) */
  ref(): void;
  unref(): void;
  stats(): RingStats;
  /**
   * Test hook: writes `bytesWritten` bytes of a frame as a writer that died part-way would;
   * `corruptCrc` spoils its checksum; `publishTail` advances the tail over it (the RDMA case of a tail
   * landing before the bytes). No wrap-around: does nothing when the frame does not fit before the end.
   */
  writeTorn(frame: Uint8Array, bytesWritten: number, corruptCrc: boolean, publishTail: boolean): void;
  close(): void;
  readonly capacity: number;
  readonly maxPayload: number;
  readonly head: number;
  readonly tail: number;
  readonly readerPid: number;
  readonly readerClosed: boolean;
  readonly writerPid: number;
  /** the inode mapped: a reader that replaced the file makes it differ from the path's */
  readonly inode: number;
  readonly closed: boolean;
}

export interface RdmaPeerInfo {
  lid: number;
  qpn: number;
  psn: number;
  rkey: number;
  addr: bigint;
  len: number;
  gid: Uint8Array;
  device?: string;
}

export interface RdmaEndpointOptions {
  /** device name (default: the first one ibv_get_device_list reports) */
  device?: string;
  port?: number;
  gidIndex?: number;
  capacity?: number;
  role: 'reader' | 'writer';
}

/** One end of a ring over RDMA WRITE; exchange localInfo() out of band, then connect(). */
export interface NativeRdmaEndpoint {
  localInfo(): RdmaPeerInfo;
  connect(remote: RdmaPeerInfo): void;
  sendMany(frames: readonly Uint8Array[]): number;
  poll(): Buffer[];
  stats(): RingStats;
  close(): void;
}

export interface RdmaDevice {
  name: string;
  guid: string;
  nodeType: string;
  transport: string;
}

export interface RdmaAddon {
  ShmRing: new (path: string, role: 'reader' | 'writer', capacity?: number) => NativeShmRing;
  RdmaEndpoint: new (options: RdmaEndpointOptions) => NativeRdmaEndpoint;
  listRdmaDevices(): RdmaDevice[];
  crc32c(data: Uint8Array): number;
  verbs: boolean;
  backend: VerbsBackend;
  headerBytes: number;
  frameHeaderBytes: number;
}

export class RdmaNotBuiltError extends Error {
  constructor(
    readonly addonPath: string,
    cause?: unknown,
  ) {
    super(
      `rdma-transport addon not built (${addonPath} is missing or does not load): run \`node ` +
        `tools/scripts/build-native.mjs rdma-transport\` ` +
        `(needs g++, make and python3; libibverbs-dev for the RDMA verbs backend)`,
      { cause },
    );
    this.name = 'RdmaNotBuiltError';
  }
}

/** The message of the error every RDMA entry point gives on a machine without an RDMA device. */
export const NO_RDMA_DEVICE = 'no RDMA device found (ibv_get_device_list returned 0 devices)';

const here = dirname(fileURLToPath(import.meta.url));
/** where node-gyp puts the addon; DECREE_RDMA_ADDON points elsewhere */
export const addonPath = process.env.DECREE_RDMA_ADDON || join(here, 'build', 'Release', 'rdma_transport.node');

let cached: RdmaAddon | null = null;

/** Loads the addon (once); throws RdmaNotBuiltError when it was not built. */
export function loadRdmaAddon(): RdmaAddon {
  if (cached) return cached;
  cached = loadRdmaAddonFrom(addonPath);
  return cached;
}

export function loadRdmaAddonFrom(path: string): RdmaAddon {
  if (!existsSync(path)) throw new RdmaNotBuiltError(path);
  try {
    return createRequire(import.meta.url)(path) as RdmaAddon;
  } catch (e) {
    throw new RdmaNotBuiltError(path, e);
  }
}

/** Whether the addon is built (and so the shm backend usable). */
export function rdmaAddonBuilt(): boolean {
  try {
    loadRdmaAddon();
    return true;
  } catch {
    return false;
  }
}

/** The reader end of a shm ring: creates `path` (or reuses a valid ring of the same capacity). */
export function createShmRing(path: string, capacity = 1 << 20): NativeShmRing {
  return new (loadRdmaAddon().ShmRing)(path, 'reader', capacity);
}

/** The writer end of a shm ring: opens `path`, created by its reader (code ENOENT until then). */
export function openShmRing(path: string): NativeShmRing {
  return new (loadRdmaAddon().ShmRing)(path, 'writer');
}

/** The RDMA devices of this machine (ibv_get_device_list); [] when there is none. */
export function listRdmaDevices(): RdmaDevice[] {
  return loadRdmaAddon().listRdmaDevices();
}

/**
 * Opens a device, registers a ring and creates an RC queue pair; throws NO_RDMA_DEVICE (code ENODEV) without a device.
 */
export function createRdmaEndpoint(options: RdmaEndpointOptions): NativeRdmaEndpoint {
  return new (loadRdmaAddon().RdmaEndpoint)(options);
}

/** Bytes a frame of `len` payload bytes takes in the ring (16-byte header, padded to 16). */
export const frameBytes = (len: number): number => (16 + len + 15) & ~15;
