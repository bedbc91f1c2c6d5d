// The lint rules that encode the architecture fail on code that breaks it (issue #18).
import { ESLint, RuleTester } from 'eslint';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ESM module without types
import decree from '../eslint-decree.mjs';

// RuleTester runs its cases through these (vitest's); its types do not declare afterAll
Object.assign(RuleTester, { afterAll, describe, it, itOnly: it.only });

const root = fileURLToPath(new URL('../../..', import.meta.url));
const tester = new RuleTester({ languageOptions: { parser: tseslint.parser } });
const outside = `${root}packages/replica/src/x.ts`;

tester.run('decree/no-role-context-writes', decree.rules['no-role-context-writes'], {
  valid: [
    { filename: outside, code: 'const n = learner.getSnapshot().context.executedUpTo;' },
    { filename: outside, code: 'const d = acceptor.getSnapshot().context; const s = d.stats.fullWrites + 1;' },
    { filename: outside, code: 'const l = learner.getSnapshot().context.config; const m = [...l.members].sort();' },
    // inside the role's own package its machine may do what it likes
    { filename: `${root}packages/learner/src/learner.ts`, code: 'a.getSnapshot().context.x = 1;' },
  ],
  invalid: [
    {
      filename: outside,
      code: 'learner.getSnapshot().context.snapshotRequested = true;',
      errors: [{ messageId: 'write' }],
    },
    {
      filename: outside,
      code: 'const d = acceptor.getSnapshot().context; d.pending.push(r);',
      errors: [{ messageId: 'write' }],
    },
    {
      filename: outside,
      code: 'const d = proposer.getSnapshot().context; d.stats.elections++;',
      errors: [{ messageId: 'write' }],
    },
    { filename: outside, code: 'delete learner.getSnapshot().context.retained;', errors: [{ messageId: 'write' }] },
    { filename: outside, code: 'learner.getSnapshot().context.chosen.set(1, v);', errors: [{ messageId: 'write' }] },
  ],
});

describe('import boundaries (eslint.config.mjs)', () => {
  const eslint = new ESLint({ cwd: root });
  const problems = async (path: string, code: string) => {
    const [r] = await eslint.lintText(code, { filePath: `${root}${path}` });
    return r!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
  };

  it('a role imports neither the replica, a transport, an app, a tool nor another role', async () => {
    const code = [
      "import { Replica } from '@decree/replica';",
      "import { createTcpTransport } from '@decree/transport-tcp';",
      "import { loadConfig } from '@decree/app-replica';",
      "import { simulate } from '@decree/sim';",
      "import { learnerMachine } from '@decree/learner';",
      "import { encodeMessage } from '@decree/protocol';",
      'export const x = [Replica, createTcpTransport, loadConfig, simulate, learnerMachine, encodeMessage];',
      '',
    ].join('\n');
    const found = await problems('packages/acceptor/src/probe.ts', code);
    expect(found).toHaveLength(5);
    expect(found.join('\n')).toMatch(/never imports the replica/);
    expect(found.join('\n')).toMatch(/roles never import each other/);
  });

  it('protocol imports nothing of ours; a library imports no tool', async () => {
    const p = await problems(
      'packages/protocol/src/probe.ts',
      "import { Bus } from '@decree/bus';\nexport const b = Bus;\n",
    );
    expect(p).toEqual([expect.stringMatching(/protocol imports nothing of ours/)]);
    const lib = "import { simulate } from '@decree/sim';\nexport const s = simulate;\n";
    expect(await problems('packages/storage/src/probe.ts', lib)).toEqual([
      expect.stringMatching(/never imports a tool/),
    ]);
    // tools may use libraries
    expect(
      await problems('tools/sim/src/probe.ts', "import { Bus } from '@decree/bus';\nexport const b = Bus;\n"),
    ).toEqual([]);
  });
});
