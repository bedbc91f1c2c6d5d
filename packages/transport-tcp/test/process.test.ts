import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { MESSAGE_TYPES } from '@decree/protocol';
import type { PeerAddress } from '../src/index.ts';
import { byLane, makeMessage, node, waitFor, type Node } from './helpers.ts';

const children: ChildProcess[] = [];
const open: Node[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await Promise.all(open.splice(0).map((n) => n.t.close()));
});

describe('across processes', () => {
  it('a transport in a child process (copyFrames off) echoes every message type intact', async () => {
    const dir: Record<string, PeerAddress> = {};
    const a = await node('a', dir);
    open.push(a);
    const child = fork(fileURLToPath(new URL('./echo-peer.ts', import.meta.url)), ['e', 'a', String(a.port)], {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`echo peer exited with ${code}`)));
    });
    dir.e = { host: '127.0.0.1', port };
    const sent = MESSAGE_TYPES.map((t) => makeMessage(t, 'a', 'e', `ring-${t}`));
    for (const m of sent) a.t.send(m);
    await waitFor(() => a.got.length === sent.length, 'echoes', 30_000);
    expect(byLane(a.got.map((m) => ({ ...m, from: 'a', to: 'e' })))).toEqual(byLane(sent));
    expect(a.got.every((m) => m.from === 'e' && m.to === 'a')).toBe(true);
    // the child dies: the link goes down, and the transport keeps retrying without crashing
    child.kill('SIGKILL');
    await waitFor(() => !a.t.isConnected('e'), 'link down');
    await waitFor(() => a.t.stats().connectFailures >= 1, 'a failed retry');
  });
});
