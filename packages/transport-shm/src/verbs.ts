import {
  createRdmaEndpoint,
  listRdmaDevices,
  type NativeRdmaEndpoint,
  type RdmaDevice,
  type RdmaEndpointOptions,
} from '@decree/rdma-transport';

/**
 * What the RDMA transport needs from a verbs layer: device discovery and endpoints (a registered
 * ring plus an RC queue pair) that connect to a peer's details and post RDMA WRITEs. The default is
 * the addon's libibverbs backend (`nativeVerbs`); `MemoryFabric` (memory-verbs.ts) implements the
 * same interface in TypeScript so the exchange and the transport can be tested without hardware.
 */
export interface RdmaVerbs {
  /** the devices of this machine; [] when there is none */
  listDevices(): RdmaDevice[];
  /** opens the device, registers a ring and creates a queue pair (throws code ENODEV without a device) */
  createEndpoint(options: RdmaEndpointOptions): NativeRdmaEndpoint;
}

/** The libibverbs backend of native/rdma-transport. */
export const nativeVerbs: RdmaVerbs = {
  listDevices: () => listRdmaDevices(),
  createEndpoint: (o) => createRdmaEndpoint(o),
};
