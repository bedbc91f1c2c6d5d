export * from './env.ts';
export * from './scheduler.ts';
export * from './bus.ts';
export * from './simnet.ts';
export * from './msg-size.ts';
