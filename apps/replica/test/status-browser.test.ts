/**
 * The status page in headless Chromium (Debian's chromium, driven by playwright-core; nothing is
 * downloaded): three `decree start` processes, a follower's page, then the leader killed with
 * SIGKILL. Without a reload the page must move the proposer highlight to the new leader, show the
 * dead replica unreachable and list one more leader change: every figure comes over /events.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, freePorts, killAll, resp, tempDir, writeClusterConfig } from './helpers.ts';

const CHROMIUM = process.env.DECREE_CHROMIUM ?? '/usr/bin/chromium';
const tmp = tempDir('status-browser');
let cluster: Cluster;
const statusPort = new Map<string, number>();
let browser: { close(): Promise<void> } | undefined;

beforeAll(async () => {
  const { configPath, replicas } = await writeClusterConfig(tmp.dir);
  const cfg = JSON.parse(readFileSync(configPath, 'utf8')) as { replicas: { id: string; statusPort?: number }[] };
  const ports = await freePorts(cfg.replicas.length);
  cfg.replicas.forEach((r, i) => {
    r.statusPort = ports[i]!;
    statusPort.set(r.id, ports[i]!);
  });
  writeFileSync(configPath, JSON.stringify(cfg, null, 2));
  cluster = new Cluster(configPath, replicas);
  await cluster.startAll();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await killAll();
  tmp.remove();
});

/** In-page expressions (strings: the test's tsconfig has no DOM lib). */
const proposerChips = (path: string) =>
  `[...document.querySelectorAll('.chart[data-ring="default"][data-role="proposer"] .st[data-path="${path}"] .chip')]` +
  '.map((c) => c.dataset.member)';
const row = (id: string) => `document.querySelector('table.cluster[data-ring="default"] tr[data-member="${id}"]')`;
const changes = `document.querySelectorAll('#changes ol.changes[data-ring="default"] li').length`;

// needs Debian's chromium (the pretest step installs it; tools/scripts/system-deps.json)
describe('status page in a browser', () => {
  it('finds chromium', () =>
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`).toBe(true));

  it('moves the leader highlight, live, when the leader is killed', async () => {
    const { chromium } = await import('playwright-core');
    const leader = await cluster.leader();
    const follower = cluster.replicas.map((r) => r.id).find((id) => id !== leader)!;
    for (let i = 0; i < 20; i++) await resp(cluster.port(leader), ['SET', `k${i}`, `v${i}`]);
    const b = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu'],
    });
    browser = b;
    const page = await b.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`http://127.0.0.1:${statusPort.get(follower)}/`);

    // through /events: the leader's proposer chip in `leading`, its row up and leading
    await page.waitForFunction(
      `${proposerChips('leading')}.includes(${JSON.stringify(leader)}) && ` +
        `${row(leader)}?.dataset.role === 'leader' && ${row(leader)}?.dataset.state === 'up' && ` +
        `Number(document.getElementById('live').dataset.updates) >= 2`,
      undefined,
      { timeout: 20_000 },
    );
    expect(await page.locator('#id').textContent()).toBe(follower);
    expect(await page.locator('#leader').textContent()).toBe(leader);
    expect(
      await page.locator(`${'.chart[data-role="proposer"] .st[data-path="leading"]'}`).getAttribute('class'),
    ).toMatch(/\bon\b/);
    expect(await page.locator(`table.cluster tr[data-member="${follower}"]`).getAttribute('data-state')).toBe('self');
    expect(await page.locator('#tput').textContent()).toMatch(/commands\/s/);
    const before = (await page.evaluate(changes)) as number;
    expect(before).toBeGreaterThanOrEqual(1);
    // a mark that a reload would lose
    await page.evaluate('window.__sameDocument = true');

    await cluster.kill9(leader);
    const survivors = cluster.liveIds();
    const next = await cluster.leader(45_000, survivors);
    expect(next).not.toBe(leader);
    await page.waitForFunction(
      `${proposerChips('leading')}.join() === ${JSON.stringify(next)} && ` +
        `${row(leader)}?.dataset.state === 'unreachable' && ${row(next)}?.dataset.role === 'leader' && ` +
        `${changes} > ${before}`,
      undefined,
      { timeout: 30_000 },
    );
    expect(await page.evaluate('window.__sameDocument')).toBe(true);
    expect(await page.locator('#leader').textContent()).toBe(next);
    expect(await page.evaluate(proposerChips('leading'))).toEqual([next]);
    expect(await page.locator(`table.cluster tr[data-member="${leader}"] td.state`).textContent()).toMatch(
      /^unreachable/,
    );
    expect(await page.locator('#changes ol.changes[data-ring="default"] li').first().getAttribute('data-to')).toBe(
      next,
    );
    if (process.env.DECREE_KEEP_SCREENSHOT)
      await page.screenshot({ path: process.env.DECREE_KEEP_SCREENSHOT, fullPage: true });
  }, 120_000);
});
