export * from './config-manager.ts';
