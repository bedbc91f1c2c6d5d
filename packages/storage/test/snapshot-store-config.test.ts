import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSnapshotStore, MemorySnapshotStore, decodeSnapshotHeader, encodeSnapshotFile } from '../src/index.ts';

describe('snapshot stores keep the configuration', () => {
  it('the file header carries epoch and start slot beside the members; a header of members alone still reads', () => {
    const data = new Uint8Array([1, 2, 3]);
    const { header } = encodeSnapshotFile(40, ['r1', 'r4'], data, { epoch: 3, startSlot: 31 });
    expect(decodeSnapshotHeader(header, 'x').meta).toMatchObject({
      slot: 40,
      members: ['r1', 'r4'],
      epoch: 3,
      startSlot: 31,
      length: 3,
    });
    const old = encodeSnapshotFile(40, ['r1', 'r4'], data).header;
    const meta = decodeSnapshotHeader(old, 'y').meta;
    expect(meta.members).toEqual(['r1', 'r4']);
    expect(meta.epoch).toBeUndefined();
  });

  it('a file store and a memory store give the configuration back at load', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapcfg-'));
    for (const store of [new FileSnapshotStore(dir, { sync: false }), new MemorySnapshotStore()]) {
      await store.save(12, ['a', 'b', 'c'], new Uint8Array([9]), { epoch: 2, startSlot: 10 });
      const [m] = await store.list();
      const snap = await store.load(m!.name);
      expect(snap.meta).toMatchObject({ slot: 12, members: ['a', 'b', 'c'], epoch: 2, startSlot: 10 });
    }
  });
});
