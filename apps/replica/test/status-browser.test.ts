import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster, LogMachine } from '@decree/testkit';
import { startStatusServer, type StatusServer } from '../src/status.ts';

const CHROMIUM = process.env.DECREE_CHROMIUM ?? '/usr/bin/chromium';
const enc = (s: string) => new TextEncoder().encode(s);

// needs Debian's chromium (the pretest step installs it; tools/scripts/system-deps.json)
describe('status page in a browser', () => {
  it('finds chromium', () =>
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`).toBe(true));
  let cluster: LocalCluster<LogMachine> | undefined;
  let server: StatusServer | undefined;
  let dir: string | undefined;
  let browser: { close(): Promise<void> } | undefined;
  afterEach(async () => {
    await browser?.close();
    await server?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('loads the page of a live cluster, finds the leader, saves a screenshot', async () => {
    const { chromium } = await import('playwright-core');
    cluster = await new LocalCluster({
      makeStateMachine: () => new LogMachine(),
      options: { tickMs: 5, elector: { electionTimeoutMinMs: 400, electionTimeoutMaxMs: 800, heartbeatMs: 40 } },
    }).start();
    const leader = await cluster.waitForLeader();
    const follower = cluster.replicas.find((r) => r !== leader)!;
    server = await startStatusServer({ replicas: [follower], port: 0 });
    // keep commands flowing so the chart has something to draw
    let running = true;
    const load = (async () => {
      for (let i = 0; running; i++) {
        try {
          await (cluster!.leader() ?? leader).submit(enc(`c${i}`));
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    })();
    try {
      const b = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu'],
      });
      browser = b;
      const page = await b.newPage();
      await page.goto(server.url);
      // the script polls /status.json: wait until the throughput line shows a figure
      await page.waitForFunction("/commands\\/s/.test(document.getElementById('tput')?.textContent ?? '')", undefined, {
        timeout: 20_000,
      });
      const shown = await page.locator('#leader').textContent();
      expect(shown).toBe(cluster.leader()?.id ?? leader.id);
      expect(await page.locator('#id').textContent()).toBe(follower.id);
      expect(await page.locator('#rows tr').count()).toBe(1);
      dir = mkdtempSync(join(tmpdir(), 'decree-status-'));
      const shot = join(dir, 'status.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(1000);
      expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
      if (process.env.DECREE_KEEP_SCREENSHOT)
        await page.screenshot({ path: process.env.DECREE_KEEP_SCREENSHOT, fullPage: true });
    } finally {
      running = false;
      await load;
    }
  }, 60_000);
});
