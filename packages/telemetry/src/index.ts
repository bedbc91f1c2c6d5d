export { instrumentBus, formatTraceparent, parseTraceparent, type InstrumentBusOptions, type BusInstrumentation } from './tracing.ts';
