import { describe, expect, it } from 'vitest';
import { formatTable, storageBench } from '../src/storage.ts';

describe('storage bench', () => {
  it('reports group-commit throughput and the commit time of one record alone (p50 ≤ p99)', async () => {
    const rows = await storageBench({ stores: ['memory', 'wal'], recordBytes: [64], durationMs: 100, appenders: 8 });
    expect(rows.map((r) => r.store)).toEqual(['memory', 'wal']);
    for (const r of rows) {
      expect(r.appendsPerSec).toBeGreaterThan(0);
      expect(r.commitP50us).toBeGreaterThan(0);
      expect(r.commitP99us).toBeGreaterThanOrEqual(r.commitP50us);
    }
    // the WAL groups concurrent appends into one write + sync
    expect(rows[1]!.recordsPerSync).toBeGreaterThan(1);
    const table = formatTable(rows);
    expect(table.split('\n')[0]).toMatch(/commit p50 µs\s+commit p99 µs$/);
    expect(table.split('\n')).toHaveLength(3);
  });
});
