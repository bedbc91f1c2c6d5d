export * from './log-machine.ts';
export * from './sim-cluster.ts';
