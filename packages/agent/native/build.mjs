// Builds the agent's exec permission helper beside its bundle: a static
// binary, so that endpoints need nothing but it. Without a C compiler the
// agent is built without it and says so when it starts (executions are then
// not checked; everything else works).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

const source = new URL('./exec-guard.c', import.meta.url).pathname;
const output = new URL('../dist/quell-exec-guard', import.meta.url).pathname;
mkdirSync(new URL('../dist/', import.meta.url).pathname, { recursive: true });
try {
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-static', '-o', output, source], { stdio: ['ignore', 'inherit', 'inherit'] });
} catch (error) {
  // Installing Quell must not fail for want of it: the agent says at start that its exec guard is missing.
  const why = error.code === 'ENOENT' ? 'there is no C compiler (cc)' : 'the C compiler failed (above)';
  process.stderr.write(`The agent is built without its exec guard: ${why}. Install gcc and libc6-dev, then run npm run build:agent, to have it.\n`);
}
