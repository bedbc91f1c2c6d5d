import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { escapeToken, isValidPrefix, replicaWildcard, roleSubject, unescapeToken } from '../src/index.ts';
import { findNatsServer, startNatsServer } from '../src/testing.ts';

describe('subjects', () => {
  test.prop([fc.string({ unit: 'binary', maxLength: 20 })])('escapeToken gives a valid token and round-trips', (id) => {
    const t = escapeToken(id);
    expect(t).toMatch(/^[A-Za-z0-9_%-]+$/);
    expect(unescapeToken(t)).toBe(id);
  });

  test.prop([fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })])('distinct ids get distinct tokens', (x, y) => {
    fc.pre(x !== y);
    expect(escapeToken(x)).not.toBe(escapeToken(y));
  });

  it('leaves plain ids alone and builds the subjects', () => {
    expect(escapeToken('r1')).toBe('r1');
    expect(escapeToken('a.b')).toBe('a%2Eb');
    expect(escapeToken('')).toBe('%');
    expect(escapeToken('%')).toBe('%25');
    expect(roleSubject('decree', 'ring0', 'r2', 'acceptor')).toBe('decree.ring0.r2.acceptor');
    expect(replicaWildcard('decree', 'r2')).toBe('decree.*.r2.>');
    expect(isValidPrefix('acme.decree')).toBe(true);
    for (const bad of ['', 'a.', '.a', 'a.*', 'a >', 'a..b']) expect(isValidPrefix(bad)).toBe(false);
  });
});

describe('startNatsServer', () => {
  it('names the apt-get line when nats-server is missing', () => {
    expect(() => findNatsServer({ PATH: '/nonexistent' }, [])).toThrow(/apt-get install -y nats-server/);
  });

  it('starts on a free loopback port, accepts connections, and stop() kills it and cleans up', async () => {
    const s = await startNatsServer();
    expect(s.url).toBe(`nats://127.0.0.1:${s.port}`);
    expect(() => process.kill(s.pid, 0)).not.toThrow();
    await s.stop();
    expect(() => process.kill(s.pid, 0)).toThrow();
    await s.stop(); // idempotent
  });

  it('reports a server that cannot start (port taken) with its stderr', async () => {
    const s = await startNatsServer();
    try {
      await expect(startNatsServer({ port: s.port, startTimeoutMs: 10_000 })).rejects.toThrow(/nats-server exited/);
    } finally {
      await s.stop();
    }
  });

  it('does not outlive a process that is SIGKILLed (no hook runs): the watchdog kills it', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/orphan.ts', import.meta.url));
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fixture], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d) => {
          out += String(d);
          if (out.includes('\n')) resolve(out.trim());
        });
        child.once('exit', (code) => reject(new Error(`fixture exited early (${code})`)));
      });
      const serverPid = Number(line.split(' ')[0]);
      expect(() => process.kill(serverPid, 0)).not.toThrow();
      child.kill('SIGKILL');
      const deadline = Date.now() + 20_000;
      let alive = true;
      while (alive && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          process.kill(serverPid, 0);
        } catch {
          alive = false;
        }
      }
      expect(alive).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
