export * from './disk.ts';
export * from './recording-machine.ts';
export * from './simulate.ts';
