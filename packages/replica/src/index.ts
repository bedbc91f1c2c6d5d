export * from './replica.ts';
export * from './errors.ts';
export * from './local-replay.ts';
