export * from './replica.ts';
export * from './errors.ts';
