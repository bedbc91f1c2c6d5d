export * from './nats-transport.ts';
export * from './subject.ts';
