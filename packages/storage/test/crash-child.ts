// Crash-test child: appends accept records under load to a store and prints each acknowledged id
// ("<id>\n") on stdout only after its `done(null)`. The parent SIGKILLs it at a random moment.
// usage: node --conditions=source --import tsx crash-child.ts <wal|pmem> <path>
// It loads, then waits for "go <firstId>" on stdin (the parent starts the next child while the
// current one runs, so module loading is off the critical path), recovers and prints "ready".
import type { AcceptorStore, StoreRecord } from '@decree/protocol';
import { FileWalStore } from '../src/wal.ts';
import { PmemStore } from '../src/pmem.ts';
import { crashValue } from './crash-values.ts';

const [kind, path] = process.argv.slice(2);
process.stdout.on('error', () => process.exit(0));
const store: AcceptorStore =
  kind === 'wal'
    ? new FileWalStore({ dir: path!, segmentBytes: 256 * 1024 })
    : new PmemStore({ path: path!, capacity: 8 << 20 });

const APPENDERS = 32;
let next = 0;
let maxAcked = 0;
let sinceTruncate = 0;
let out: string[] = [];
let flushScheduled = false;

/**
 * The highest id the parent can have read: written to the kernel, not only queued. A pipe write is
 * queued in this process when the parent reads slowly (a loaded machine) and is lost at the SIGKILL,
 * so the truncation (which the parent checks against what it read) follows this, not maxAcked.
 */
let maxPrinted = -1;

function ack(id: number): void {
  out.push(String(id));
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      const s = out.join('\n') + '\n';
      let top = -1;
      for (const x of out) top = Math.max(top, Number(x));
      out = [];
      process.stdout.write(s, () => {
        if (top > maxPrinted) maxPrinted = top;
      });
    });
  }
}

function appendOne(): void {
  const id = next++;
  const rec: StoreRecord = { t: 'accept', slot: id, ballot: { round: 1, leader: 'crash' }, value: crashValue(id) };
  store.append([rec], (err) => {
    if (err) {
      process.stderr.write(`append failed: ${err.message}\n`);
      process.exit(3);
    }
    ack(id);
    if (id > maxAcked) maxAcked = id;
    // a snapshotter would do this: keep the log bounded (acked ids below the mark may go)
    if (++sinceTruncate >= 200 && maxPrinted >= 0) {
      sinceTruncate = 0;
      store.truncateBelow(Math.min(maxAcked, maxPrinted) - 300);
    }
    appendOne();
  });
}

const go = await new Promise<string>((resolve) => {
  let buf = '';
  process.stdin.on('data', (d) => {
    buf += String(d);
    if (buf.includes('\n')) resolve(buf);
  });
  process.stdin.on('end', () => process.exit(0)); // the parent went away
});
next = Number(go.trim().split(' ')[1]);
await store.recover();
process.stdout.write('ready\n');
for (let i = 0; i < APPENDERS; i++) appendOne();
