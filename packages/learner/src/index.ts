export * from './learner.ts';
