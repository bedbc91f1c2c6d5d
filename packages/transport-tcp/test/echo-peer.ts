// A transport in its own process that echoes every message back to its sender (used by process.test.ts).
// Usage: node --conditions=source --import tsx echo-peer.ts <self> <peerId> <peerPort>
import { createTcpTransport } from '../src/index.ts';

const [self, peerId, peerPort] = process.argv.slice(2) as [string, string, string];
const t = await createTcpTransport({
  self,
  listen: { host: '127.0.0.1', port: 0 },
  peers: { [peerId]: { host: '127.0.0.1', port: Number(peerPort) } },
  logger: false,
  copyFrames: false,
});
t.setReceiver((m) => t.send({ ...m, from: self, to: m.from }));
process.send?.({ port: t.address()!.port });
process.on('disconnect', () => void t.close().then(() => process.exit(0)));
