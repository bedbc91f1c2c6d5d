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
export { NO_RDMA_DEVICE, listRdmaDevices, rdmaAddonBuilt, RdmaNotBuiltError } from '@decree/rdma-transport';
