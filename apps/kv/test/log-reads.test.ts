/**
 * A KvServer whose backend has no state machine of its own (no readLocal, isLeader, readIndex: the
 * client-role process of roles as processes): every read, READONLY ones included, goes through the
 * log (executeEach).
 */
import { afterAll, describe, expect, it } from 'vitest';
import Redis from 'ioredis';
import { KvMachine } from '@decree/kv-machine';
import { KvServer, type KvBackend } from '../src/index.ts';

describe('KvServer without local reads', () => {
  const sm = new KvMachine();
  let slot = 0;
  const logged: number[] = [];
  const backend: KvBackend = {
    execute: async (cmds) => cmds.map((c) => sm.apply(c, ++slot)),
    executeEach: async (cmds) => {
      logged.push(cmds.length);
      return { results: cmds.map((c) => sm.apply(c, ++slot)), slot };
    },
    status: () => ({ role: 'client' }),
  };
  const server = new KvServer({ port: 0, backend });
  afterAll(() => server.close());

  it('GET, MGET and EXISTS go through the log, READONLY or not', async () => {
    const { port } = await server.listen();
    const r = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
    await r.connect();
    expect(await r.set('k', 'v')).toBe('OK');
    const before = logged.length;
    expect(await r.get('k')).toBe('v');
    expect(await r.mget('k', 'nope')).toEqual(['v', null]);
    expect(await r.exists('k')).toBe(1);
    expect(logged.length - before).toBe(3);
    expect(await r.call('READONLY')).toBe('OK');
    expect(await r.get('k')).toBe('v');
    expect(logged.length - before).toBe(4);
    // a fast read needs local state too
    await expect(r.call('DECREE.FASTREAD', '0', '10', 'GET', 'k')).rejects.toThrow(/not supported/);
    r.disconnect();
  });
});
