#!/usr/bin/env node
// Bundles the `decree` command (apps/replica/src/cli.ts and every @decree/* package it imports) into
// one plain-JavaScript ES module, apps/replica/dist/decree.mjs, with esbuild (tsx's own compiler).
// Why: running from TypeScript through tsx compiles with keepNames, which wraps every function and
// class in a `__name(...)` call; in a replica process under load that costs about 10 % CPU
// (docs/benchmarks.md). The bundle is built without keepNames. Third-party packages stay external
// (resolved from node_modules at run time); the native addons are found next to their sources.
//
//   node tools/scripts/build-replica.mjs            # build (about 0.3 s)
//   node tools/scripts/build-replica.mjs --bench    # and apps/bench/dist/bench.mjs (what `npm run bench` runs)
//   node apps/replica/dist/decree.mjs start --config cluster.json --id r1
//
// `npm run bench` builds it before the multi-process rows, `npm run start:roles` before its 21
// processes; `npm start` still runs from source.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const outfile = join(root, 'apps/replica/dist/decree.mjs');

/** Bare imports of anything but our workspace packages stay imports (node_modules at run time). */
const externalThirdParty = {
  name: 'external-third-party',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (a) => {
      if (a.path.startsWith('@decree/') || a.path.startsWith('node:')) return undefined;
      return { path: a.path, external: true };
    });
  },
};

/**
 * Our sources that use import.meta.url / import.meta.dirname (native/*\/index.ts locating their
 * addon, the bench finding the repository, "run as a script" checks) keep their own file's values
 * in the bundle, not the bundle's.
 */
const keepSourceUrls = {
  name: 'keep-source-urls',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (a) => {
      if (a.path.includes(`${sep}node_modules${sep}`)) return undefined;
      const text = readFileSync(a.path, 'utf8');
      if (!text.includes('import.meta.')) return undefined;
      return {
        contents: text
          .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(a.path).href))
          .replaceAll('import.meta.dirname', JSON.stringify(dirname(a.path))),
        loader: 'ts',
      };
    });
  },
};

export const benchOutfile = join(root, 'apps/bench/dist/bench.mjs');

export async function buildReplica({ quiet = false } = {}) {
  return bundle(join(root, 'apps/replica/src/cli.ts'), outfile, quiet);
}

/** The bench itself (its in-process engine rows run the engine's code as built JavaScript too). */
export async function buildBench({ quiet = false } = {}) {
  return bundle(join(root, 'apps/bench/src/main.ts'), benchOutfile, quiet);
}

async function bundle(entry, outfile, quiet) {
  const t0 = performance.now();
  const out = await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['source'],
    keepNames: false,
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
    // a CommonJS dependency inside the bundle may call require()
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    plugins: [externalThirdParty, keepSourceUrls],
    // written below, each file by rename: a process starting from the bundle while another build
    // runs (npm run start:roles, the bench, tests in parallel) reads a whole file, old or new
    write: false,
  });
  for (const f of out.outputFiles) {
    const tmp = `${f.path}.${process.pid}.tmp`;
    mkdirSync(dirname(f.path), { recursive: true });
    writeFileSync(tmp, f.contents);
    renameSync(tmp, f.path);
  }
  if (!quiet) console.error(`build-replica: ${relative(root, outfile)} in ${Math.round(performance.now() - t0)} ms`);
  return outfile;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await (process.argv.includes('--bench') ? Promise.all([buildReplica(), buildBench()]) : buildReplica()).catch((e) => {
    console.error(`build-replica: ${e.message}`);
    process.exit(1);
  });
}
