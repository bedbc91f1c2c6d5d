export * from './elector.ts';
