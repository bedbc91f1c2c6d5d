/**
 * A child process for the two-process test: one ShmTransport replica that answers every message with
 * a heartbeat-ack whose appliedUpTo echoes the message's and whose payload echoes its payload.
 *   node --conditions=source --import tsx echo-peer.ts <dir> <cluster> <self> <peer>
 */
import type { Message } from '@decree/protocol';
import { createShmTransport } from '../src/index.ts';

const [dir, cluster, self, peer] = process.argv.slice(2) as [string, string, string, string];
const t = createShmTransport({ self, peers: [self, peer], cluster, dir, capacity: 1 << 16, logger: false });
t.setReceiver((m: Message) => {
  if (m.type === 'heartbeat-ack') {
    t.send({ ...m, from: self, to: m.from });
  }
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void t.close().then(() => process.exit(0));
});
