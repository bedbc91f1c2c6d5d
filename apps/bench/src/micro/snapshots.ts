/**
 * Snapshot benchmarks (figures go to docs/benchmarks.md; timing is never a test verdict):
 *
 *   node --conditions=source --import tsx apps/bench/src/micro/snapshots.ts restart [commands=1000000]
 *   [WINDOW=8] [CHUNK=262144] node --conditions=source --import tsx apps/bench/src/micro/snapshots.ts \
 *     transfer [keys=1000000]
 *
 * restart: one replica (file WAL + file snapshots in a temp dir) applies N SET commands through
 * consensus with a snapshot every 8 MB of slot values, stops, and is created again: the time from
 * createReplica() until it has executed everything again (newest snapshot loaded and restored, WAL
 * recovered, the log suffix re-proposed and applied), and the parts of it.
 *
 * transfer: replica r1 starts from a KV snapshot of N keys, r2 (empty) copies it over loopback TCP
 * (copyStateFromReplica): bytes / time, with the time of KvMachine.restore alone for comparison.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvCommands, KvMachine } from '@decree/kv-machine';
import { collectSnapshot, loadLatestValid } from '@decree/protocol';
import { FileSnapshotStore, FileWalStore, MemorySnapshotStore, MemoryStore } from '@decree/storage';
import { createTcpTransport, type PeerAddress } from '@decree/transport-tcp';
import { createReplica, type Replica } from '@decree/replica';

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

async function untilLeader(r: Replica): Promise<void> {
  for (let i = 0; i < 2000 && !r.isLeader(); i++) await sleep(5);
  if (!r.isLeader()) throw new Error('no leader');
}

async function restart(n: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'decree-snapbench-'));
  const mk = (sm: KvMachine) =>
    createReplica({
      id: 'solo',
      configuration: { members: ['solo'] },
      storage: new FileWalStore({ dir: join(dir, 'wal') }),
      stateMachine: sm,
      snapshots: new FileSnapshotStore(join(dir, 'snap')),
      options: {
        snapshotter: { everySlots: 0, everyBytes: 8 << 20, truncateMargin: 0, keep: 2 },
        elector: { electionTimeoutMinMs: 20, electionTimeoutMaxMs: 40 },
      },
    });
  try {
    const sm1 = new KvMachine();
    const r1 = await mk(sm1);
    await untilLeader(r1);
    const t0 = process.hrtime.bigint();
    const batch = 2000;
    for (let i = 0; i < n; i += batch) {
      const cmds = [];
      for (let j = i; j < Math.min(n, i + batch); j++) cmds.push(KvCommands.set(`key:${j % 200_000}`, `value-${j}`));
      await r1.submitBatch(cmds);
    }
    const loadMs = ms(t0);
    for (let i = 0; i < 500 && JSON.stringify(r1.snapshotter.getSnapshot().value) !== '{"running":"idle"}'; i++)
      await sleep(10);
    const executed = r1.executedSlot();
    const st = r1.statistics();
    const digest = sm1.digest();
    await r1.stop();
    console.log(
      `loaded ${n} commands in ${(loadMs / 1000).toFixed(1)} s (${Math.round(n / (loadMs / 1000))} ` +
        `cmds/s), ${executed} slots, ${st.snapshots.saved} snapshots, newest at slot ` +
        `${st.snapshots.latestSlot}, log truncated below ${st.snapshots.truncatedBelow}`,
    );

    // the parts, measured apart
    let t = process.hrtime.bigint();
    const snap = await loadLatestValid(new FileSnapshotStore(join(dir, 'snap')));
    const readMs = ms(t);
    // a snapshot is taken every 8 MB of slot values: about 300,000 commands
    if (!snap) throw new Error(`no snapshot after ${n} commands: give more (a snapshot every 8 MB of slot values)`);
    t = process.hrtime.bigint();
    await new KvMachine().restore(snap.data);
    const restoreMs = ms(t);
    t = process.hrtime.bigint();
    const wal = new FileWalStore({ dir: join(dir, 'wal') });
    const rec = await wal.recover();
    const walMs = ms(t);
    await wal.close();

    const sm2 = new KvMachine();
    t = process.hrtime.bigint();
    const r2 = await mk(sm2);
    const createdMs = ms(t);
    await untilLeader(r2);
    for (let i = 0; i < 20_000 && r2.executedSlot() < executed; i++) await sleep(1);
    const totalMs = ms(t);
    const same = sm2.digest() === digest;
    await r2.stop();
    console.log(
      `restart: ${totalMs.toFixed(0)} ms until slot ${executed} executed again (createReplica ` +
        `${createdMs.toFixed(0)} ms); ` +
        `snapshot ${(snap.data.length / 1e6).toFixed(1)} MB at slot ${snap.meta.slot}: read+verify ` +
        `${readMs.toFixed(0)} ms, restore ${restoreMs.toFixed(0)} ms; ` +
        `WAL recovery ${walMs.toFixed(0)} ms (${rec.accepted.size} log entries after the truncation point); ` +
        `state equal: ${same}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function transfer(keys: number): Promise<void> {
  const kv = new KvMachine();
  for (let i = 0; i < keys; i++) kv.apply(KvCommands.set(`key:${i}`, `value-${i}-${'x'.repeat(16)}`), i + 1);
  const data = await collectSnapshot(await kv.snapshot());
  const store1 = new MemorySnapshotStore();
  await store1.save(keys, ['r1', 'r2'], data);
  await new KvMachine().restore(data); // warm-up
  let t = process.hrtime.bigint();
  await new KvMachine().restore(data);
  const restoreMs = ms(t);

  const addrs = new Map<string, PeerAddress>();
  const t1 = await createTcpTransport({
    self: 'r1',
    listen: { host: '127.0.0.1', port: 0 },
    peers: (id) => addrs.get(id),
  });
  const t2 = await createTcpTransport({
    self: 'r2',
    listen: { host: '127.0.0.1', port: 0 },
    peers: (id) => addrs.get(id),
  });
  addrs.set('r1', t1.address()!);
  addrs.set('r2', t2.address()!);
  // WINDOW=<chunks> CHUNK=<bytes> override the flow-control defaults (8 chunks of 256 KiB)
  const flow = {
    ...(process.env.WINDOW ? { window: Number(process.env.WINDOW) } : {}),
    ...(process.env.CHUNK ? { chunkBytes: Number(process.env.CHUNK) } : {}),
  };
  const common = {
    configuration: { members: ['r1', 'r2'] },
    options: { snapshotter: { everySlots: 0, everyBytes: 0, ...flow } },
  };
  const r1 = await createReplica({
    id: 'r1',
    ...common,
    storage: new MemoryStore(),
    stateMachine: new KvMachine(),
    snapshots: store1,
    transport: t1,
  });
  const sm2 = new KvMachine();
  const r2 = await createReplica({ id: 'r2', ...common, storage: new MemoryStore(), stateMachine: sm2, transport: t2 });
  await sleep(200);
  t = process.hrtime.bigint();
  // when every chunk is in and verified (the install starts), the wire part is over
  let wireMs = 0;
  const sub = r2.snapshotter.subscribe((sn) => {
    if (!wireMs && sn.context.fetch?.installing) wireMs = ms(t);
  });
  const slot = await r2.copyStateFromReplica('r1');
  const totalMs = ms(t);
  sub.unsubscribe();
  const mb = data.length / 1e6;
  const st = r2.statistics().snapshots;
  console.log(
    `transfer over loopback TCP: ${mb.toFixed(1)} MB (${keys} keys) in ${totalMs.toFixed(0)} ms = ` +
      `${(mb / (totalMs / 1000)).toFixed(1)} MB/s including restore; ` +
      `chunks in and verified after ${wireMs.toFixed(0)} ms = ${(mb / (wireMs / 1000)).toFixed(1)} MB/s on ` +
      `the wire; KvMachine.restore alone ${restoreMs.toFixed(0)} ms; ` +
      `window ${flow.window ?? 8} x ${flow.chunkBytes ?? 256 << 10} B, ${st.chunksReceived} chunks, ` +
      `${st.badChunks} bad; installed at slot ${slot}; ${sm2.stats().keys} keys`,
  );
  await r2.stop();
  await r1.stop();
}

const [what, arg] = process.argv.slice(2);
if (what === 'restart') await restart(Number(arg ?? 1_000_000));
else if (what === 'transfer') await transfer(Number(arg ?? 1_000_000));
else console.log('usage: snapshots.ts restart|transfer [n]');
