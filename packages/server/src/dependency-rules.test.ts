import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = new URL('../../../', import.meta.url).pathname;
const DEPCRUISE = join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
const CONFIGS = ['.dependency-cruiser.cjs', '.dependency-cruiser.loops.cjs'].map((file) => join(ROOT, file));

/** Runs the repository's dependency rules as `npm run lint` does, over a tree of the files given. */
async function cruise(files: Record<string, string>): Promise<{ ok: boolean; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'quell-depcruise-'));
  dirs.push(dir);
  const tree = { 'package.json': '{ "name": "fixture", "private": true, "type": "module" }', 'tsconfig.json': '{ "compilerOptions": { "module": "ESNext", "moduleResolution": "Bundler", "allowImportingTsExtensions": true, "noEmit": true } }', ...files };
  for (const [path, text] of Object.entries(tree)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  let ok = true;
  let output = '';
  for (const config of CONFIGS) {
    try {
      output += (await promisify(execFile)(process.execPath, [DEPCRUISE, 'packages', '--config', config], { cwd: dir })).stdout;
    } catch (error) {
      ok = false;
      output += (error as { stdout: string }).stdout;
    }
  }
  return { ok, output };
}
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

describe('the dependency rules of npm run lint', () => {
  const alpha = 'packages/server/src/modules/alpha/alpha.service.ts';
  const beta = 'packages/server/src/modules/beta/beta.service.ts';

  it('pass a module that imports another one way, and a test that imports a helper', async () => {
    const result = await cruise({
      [alpha]: "import { beta } from '../beta/beta.service.ts';\nexport const alpha = beta;\n",
      [beta]: 'export const beta = 1;\n',
      'packages/server/src/modules/beta/beta.test.ts': "import { helper } from '../../test/helper.ts';\nexport const test = helper;\n",
      'packages/server/src/test/helper.ts': 'export const helper = 1;\n',
    });
    expect(result).toMatchObject({ ok: true });
  });

  it('fail on a loop between two module folders, on production code importing a test helper, and on a package reaching into another', async () => {
    const result = await cruise({
      [alpha]: "import { beta } from '../beta/beta.service.ts';\nexport const alpha = beta;\n",
      [beta]: "import { helper } from '../../test/helper.ts';\nimport { gamma } from './gamma.ts';\nexport const beta = helper + gamma;\n",
      'packages/server/src/modules/beta/gamma.ts': "import { alpha } from '../alpha/alpha.service.ts';\nexport const gamma = alpha;\n",
      'packages/server/src/test/helper.ts': 'export const helper = 1;\n',
      'packages/agent/src/agent.ts': "import { beta } from '../../server/src/modules/beta/beta.service.ts';\nexport const agent = beta;\n",
    });
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/error no-loop-between-server-modules: packages\/server\/src\/modules\/(alpha|beta) → \s+packages\/server\/src\/modules\/(beta|alpha) →/);
    expect(result.output).toContain(`error no-test-helpers-in-production: ${beta} → packages/server/src/test/helper.ts`);
    expect(result.output).toContain(`error packages-through-entry-points: packages/agent/src/agent.ts → ${beta}`);
  });
});
