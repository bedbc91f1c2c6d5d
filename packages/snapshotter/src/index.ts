export * from './snapshotter.ts';
