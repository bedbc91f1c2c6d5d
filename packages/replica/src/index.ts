export * from './replica.ts';
export { createReplica } from './create.ts';
export * from './errors.ts';
export * from './local-replay.ts';
export * from './submissions.ts';
export * from './forwarding.ts';
export * from './types.ts';
export { statePath } from './stats.ts';
