export * from './disk.ts';
export * from './recording-machine.ts';
export * from './simulate.ts';
export * from './scale.ts';
export * from './liveness.ts';
export * from './reconfig.ts';
