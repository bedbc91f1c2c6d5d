export {
  RingTransport,
  ShmTransport,
  RdmaTransport,
  ShmTransportError,
  createShmTransport,
  createRdmaTransport,
  ringFileName,
  type ShmTransportOptions,
  type RdmaTransportOptions,
  type ShmTransportErrorCode,
  type ShmTransportLogger,
  type ShmTransportStats,
  type ShmPeerStats,
} from './transport.ts';
export {
  RdmaSideChannel,
  RdmaExchangeError,
  createRdmaSideChannel,
  encodeRdmaInfo,
  decodeRdmaInfo,
  type RdmaExchange,
  type RdmaExchangeHooks,
  type RdmaExchangeErrorCode,
  type RdmaExchangeLogger,
  type RdmaLinkInfo,
  type RdmaSideChannelOptions,
} from './exchange.ts';
export { nativeVerbs, type RdmaVerbs } from './verbs.ts';
export { MemoryFabric, MemoryEndpoint, type MemoryHost } from './memory-verbs.ts';
export {
  NO_RDMA_DEVICE,
  listRdmaDevices,
  rdmaAddonBuilt,
  RdmaNotBuiltError,
  type RdmaPeerInfo,
  type RdmaDevice,
} from '@decree/rdma-transport';
