export * from './resp.ts';
export * from './server.ts';
