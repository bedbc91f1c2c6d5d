export * from './log-machine.ts';
export * from './sim-cluster.ts';
export * from './checks.ts';
export * from './chaos.ts';
export * from './local-cluster.ts';
export * from './forgetful-acceptor.ts';
