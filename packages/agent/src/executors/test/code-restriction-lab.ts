import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CommandRunner, systemRunner } from '../../runner.ts';
import { executionContext } from './recording-runner.ts';
import { type CodeRestrictionSnapshot, parseMountinfo, removeCodeRestriction, restrictCodeExecutionIn, topmostAt } from '../restrict-code.linux.ts';

/**
 * Runs the code-restriction executors for real inside a private mount
 * namespace, so the host's mounts are never touched, and prints what it
 * observed as one JSON line for restrict-code.linux.test.ts to judge:
 *
 *   unshare -m --propagation private node --import tsx code-restriction-lab.ts BASE
 *
 * Under BASE it builds the user-writable directories: tmpfs mounts with
 * various prior flags, a plain directory (no mount of its own) and one that
 * does not exist. Everything mounted here disappears with the namespace.
 */

const restrictContext = (runner: CommandRunner = systemRunner) => executionContext(runner, { type: 'restrict_code_execution', entity: { name: 'device' } });
/** The snapshot goes through JSON, as it does through the agent's journal. */
const removeContext = (snapshot: unknown, runner: CommandRunner = systemRunner) =>
  executionContext(runner, { type: 'remove_code_restriction', entity: { name: 'device' } }, { priorSnapshot: JSON.parse(JSON.stringify(snapshot)) });

const base = process.argv[2];
if (!base) throw new Error('usage: code-restriction-lab.ts BASE');

const mountinfo = (): string => readFileSync('/proc/self/mountinfo', 'utf8');
const mount = (...args: string[]): void => void execFileSync('mount', args);

const dirs = {
  tmpfs: join(base, 'tmpfs'),
  plain: join(base, 'plain'),
  nosuidNoatime: join(base, 'nosuid-noatime'),
  locked: join(base, 'locked'),
  missing: join(base, 'missing'),
};
for (const dir of [dirs.tmpfs, dirs.plain, dirs.nosuidNoatime, dirs.locked]) mkdirSync(dir, { recursive: true });
mount('-t', 'tmpfs', '-o', 'size=4m,mode=1777', 'quelltest', dirs.tmpfs);
mount('-t', 'tmpfs', '-o', 'size=4m,mode=1777,nosuid,noatime', 'quelltest', dirs.nosuidNoatime);
mount('-t', 'tmpfs', '-o', 'size=4m,mode=1777,noexec,nosuid,nodev', 'quelltest', dirs.locked);

/** What happens when the copied script is executed directly: its output, or the error code. */
function tryRun(dir: string): string {
  try {
    return execFileSync(join(dir, 'dropped.sh'), { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}
const runnable = ['tmpfs', 'plain', 'nosuidNoatime'] as const;
const attempts = () => Object.fromEntries(runnable.map((name) => [name, tryRun(dirs[name])]));
const options = () => Object.fromEntries(Object.entries(dirs).map(([name, dir]) => [name, topmostAt(parseMountinfo(mountinfo()), dir)?.options ?? null]));

for (const name of runnable) {
  writeFileSync(join(dirs[name], 'dropped.sh'), '#!/bin/sh\necho ran\n');
  chmodSync(join(dirs[name], 'dropped.sh'), 0o755);
}
const directories = [dirs.tmpfs, dirs.plain, dirs.nosuidNoatime, dirs.locked, dirs.missing];
const restrict = restrictCodeExecutionIn(directories);

const before = mountinfo();
const optionsBefore = options();
const runsBefore = attempts();

const restricted = await restrict(restrictContext());
const optionsRestricted = options();
const runsRestricted = attempts();
const snapshot = JSON.parse(JSON.stringify(restricted.snapshot)) as CodeRestrictionSnapshot;

const removed = await removeCodeRestriction(removeContext(snapshot));
const afterRemoval = mountinfo();
const runsAfterRemoval = attempts();

// A process working inside the bind mount keeps it busy: removal still takes the mount away.
const unmounts: string[] = [];
const watching: CommandRunner = {
  run(command, args, input) {
    if (command === 'umount') unmounts.push(args.join(' '));
    return systemRunner.run(command, args, input);
  },
};
const second = await restrict(restrictContext());
const busy: ChildProcess = spawn('sleep', ['30'], { cwd: dirs.plain, stdio: 'ignore' });
await new Promise((resolve) => setTimeout(resolve, 100));
try {
  await removeCodeRestriction(removeContext(second.snapshot, watching));
} finally {
  busy.kill('SIGKILL');
}
const afterBusyRemoval = mountinfo();

// One directory fails to remount: the ones already restricted are put back before the error is reported.
const failing: CommandRunner = {
  run: (command, args, input) => (command === 'mount' && args.at(-1) === dirs.nosuidNoatime && args[1]?.includes('noexec'))
    ? Promise.resolve({ code: 32, stdout: '', stderr: 'mount: permission denied (simulated)' })
    : systemRunner.run(command, args, input),
};
let rollbackError = '';
try {
  await restrict(restrictContext(failing));
} catch (error) {
  rollbackError = (error as Error).message;
}
const afterRollback = mountinfo();

// Something else mounted where the restriction was: removal leaves it in place and says why; once it is gone, removal completes.
const third = await restrict(restrictContext());
mount('-t', 'tmpfs', '-o', 'size=4m', 'quellother', dirs.tmpfs);
mount('-t', 'tmpfs', '-o', 'size=4m', 'quellother', dirs.plain);
let refusal = '';
try {
  await removeCodeRestriction(removeContext(third.snapshot));
} catch (error) {
  refusal = (error as Error).message;
}
const sourcesAfterRefusal = [dirs.tmpfs, dirs.plain].map((dir) => topmostAt(parseMountinfo(mountinfo()), dir)?.source ?? null);
execFileSync('umount', ['--', dirs.tmpfs]);
execFileSync('umount', ['--', dirs.plain]);
await removeCodeRestriction(removeContext(third.snapshot));
const afterRetry = mountinfo();

process.stdout.write(`${JSON.stringify({
  dirs, before, optionsBefore, runsBefore,
  restrictedOutput: restricted.output, snapshot, optionsRestricted, runsRestricted,
  removedOutput: removed.output, afterRemoval, runsAfterRemoval, afterBusyRemoval, unmounts,
  rollbackError, afterRollback, refusal, sourcesAfterRefusal, afterRetry,
})}\n`);
