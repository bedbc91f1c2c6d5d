export * from './syntax.ts';
export * from './format.ts';
export * from './messages.ts';
export * from './runner.ts';
export * from './golden.ts';
export * from './store.ts';
export * from './files.ts';
