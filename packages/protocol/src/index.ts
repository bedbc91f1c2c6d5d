export * from './types.ts';
export * from './messages.ts';
export * from './codec.ts';
export * from './contracts.ts';
export * from './storage.ts';
export * from './state-machine.ts';
export * from './lazy-batch.ts';
