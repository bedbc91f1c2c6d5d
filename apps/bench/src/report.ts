/**
 * The bench's outputs besides the console: results.json, results.md and a chart, results.svg
 * (drawn here, no library), plus results.png when Debian's chromium is there (playwright-core
 * renders the SVG).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchRow } from './stats.ts';

const COLORS: Record<string, string> = { engine: '#3b6fd8', cluster: '#2f9e5b', baselines: '#8a8f98' };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Bar {
  label: string;
  values: { v: number; color: string; text: string }[];
}

/** A horizontal bar chart on a log10 axis; returns the SVG fragment and its height. */
function barPanel(
  title: string,
  bars: Bar[],
  y0: number,
  width: number,
  unit: string,
  legend?: { color: string; text: string }[],
): { svg: string; height: number } {
  const labelW = 470;
  const plotW = width - labelW - 110;
  const barH = 14;
  const gap = 8;
  const all = bars.flatMap((b) => b.values.map((v) => v.v)).filter((v) => v > 0 && Number.isFinite(v));
  if (all.length === 0) return { svg: '', height: 0 };
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const x = (v: number) =>
    labelW + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotW;
  const out: string[] = [];
  let y = y0;
  out.push(`<text x="10" y="${y + 16}" font-size="15" font-weight="bold">${esc(title)}</text>`);
  if (legend) {
    let lx = width - 20 - legend.length * 140;
    for (const l of legend) {
      out.push(
        `<rect x="${lx}" y="${y + 5}" width="12" height="12" fill="${l.color}"/><text ` +
          `x="${lx + 16}" y="${y + 15}" font-size="11">${esc(l.text)}</text>`,
      );
      lx += 140;
    }
  }
  y += 30;
  const top = y;
  for (const b of bars) {
    const h = b.values.length * barH + (b.values.length - 1) * 2;
    out.push(
      `<text x="${labelW - 8}" y="${y + h / 2 + 4}" font-size="11" text-anchor="end">` +
        `${esc(b.label.length > 80 ? `${b.label.slice(0, 77)}…` : b.label)}</text>`,
    );
    b.values.forEach((v, i) => {
      const yy = y + i * (barH + 2);
      if (!(v.v > 0) || !Number.isFinite(v.v)) return;
      out.push(
        `<rect x="${labelW}" y="${yy}" width="${Math.max(1, x(v.v) - labelW).toFixed(1)}" ` +
          `height="${barH}" fill="${v.color}"/>`,
      );
      out.push(`<text x="${(x(v.v) + 4).toFixed(1)}" y="${yy + barH - 3}" font-size="10">${esc(v.text)}</text>`);
    });
    y += h + gap;
  }
  // decades
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const xx = x(d).toFixed(1);
    out.push(`<line x1="${xx}" y1="${top - 4}" x2="${xx}" y2="${y}" stroke="#ccc" stroke-dasharray="2,3"/>`);
    const tick =
      unit === 'ops/s'
        ? d >= 1e6
          ? `${d / 1e6} M`
          : d >= 1e3
            ? `${d / 1e3} K`
            : String(d)
        : `${Number(d.toPrecision(1))} ${unit}`;
    out.push(`<text x="${xx}" y="${y + 12}" font-size="10" text-anchor="middle" fill="#555">${tick}</text>`);
  }
  return { svg: out.join('\n'), height: y + 22 - y0 };
}

export function chartSvg(rows: readonly BenchRow[], title: string): string {
  const width = 1200;
  const thr = rows.filter(
    (r) =>
      r.skipped === undefined &&
      r.opsPerSec > 0 &&
      Number.isFinite(r.opsPerSec) &&
      (r.group === 'engine' || r.group === 'cluster' || r.group === 'baselines'),
  );
  const lat = thr.filter((r) => /unpipelined|no pipelining|1 client/i.test(r.name) && r.p50ms > 0);
  const p1 = barPanel(
    'Throughput (ops/s, log scale)',
    thr.map((r) => ({
      label: r.name,
      values: [
        {
          v: r.opsPerSec,
          color: COLORS[r.group ?? ''] ?? '#555',
          text: Math.round(r.opsPerSec).toLocaleString('en-US'),
        },
      ],
    })),
    50,
    width,
    'ops/s',
    [
      { color: COLORS.engine!, text: 'in-process engine' },
      { color: COLORS.cluster!, text: '3 Decree processes' },
      { color: COLORS.baselines!, text: 'redis-server / etcd' },
    ],
  );
  const p2 = barPanel(
    'One client, one command at a time: latency (ms, log scale)',
    lat.map((r) => ({
      label: r.name,
      values: [
        { v: r.p50ms, color: '#4c9be8', text: `p50 ${r.p50ms.toFixed(3)}` },
        { v: r.p99ms, color: '#e8884c', text: `p99 ${r.p99ms.toFixed(3)}` },
      ],
    })),
    50 + p1.height + 20,
    width,
    'ms',
    [
      { color: '#4c9be8', text: 'p50' },
      { color: '#e8884c', text: 'p99' },
    ],
  );
  const height = 50 + p1.height + 20 + p2.height + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="28" font-size="18" font-weight="bold">${esc(title)}</text>`,
    p1.svg,
    p2.svg,
    '</svg>',
  ].join('\n');
}

/** Renders the SVG to PNG with Debian's chromium through playwright-core; false when it cannot. */
export async function svgToPng(svgPath: string, pngPath: string): Promise<boolean> {
  const exe = process.env.DECREE_CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(exe)) return false;
  let pw: typeof import('playwright-core');
  try {
    pw = await import('playwright-core');
  } catch {
    return false;
  }
  const browser = await pw.chromium.launch({
    executablePath: exe,
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
  try {
    const page = await browser.newPage();
    const { readFileSync } = await import('node:fs');
    const svg = readFileSync(svgPath, 'utf8');
    const w = Number(/width="(\d+)"/.exec(svg)?.[1] ?? 1200);
    const h = Number(/height="(\d+)"/.exec(svg)?.[1] ?? 800);
    await page.setViewportSize({ width: w, height: h });
    await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
    await page.screenshot({ path: pngPath, clip: { x: 0, y: 0, width: w, height: h } });
    return true;
  } finally {
    await browser.close();
  }
}

export async function writeReport(
  dir: string,
  out: Record<string, unknown>,
  md: string[],
  rows: readonly BenchRow[],
  title: string,
): Promise<string[]> {
  const files = [join(dir, 'results.json'), join(dir, 'results.md'), join(dir, 'results.svg')];
  writeFileSync(
    files[0]!,
    JSON.stringify(out, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2),
  );
  writeFileSync(files[1]!, md.join('\n'));
  writeFileSync(files[2]!, chartSvg(rows, title));
  try {
    if (await svgToPng(files[2]!, join(dir, 'results.png'))) files.push(join(dir, 'results.png'));
  } catch (e) {
    console.error(`» no PNG: ${(e as Error).message.split('\n')[0]}`);
  }
  return files;
}
