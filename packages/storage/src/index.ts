export * from './memory.ts';
export * from './errors.ts';
export * from './records.ts';
export * from './wal.ts';
export * from './pmem.ts';
export * from './snapshot-file.ts';
