export * from './store.ts';
export * from './snapshotter.ts';
