export * from './acceptor.ts';
