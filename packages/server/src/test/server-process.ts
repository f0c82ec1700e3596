import { type ChildProcess, execFileSync, spawn } from 'node:child_process';

/** The `quell` command, as operators run it. */
export const QUELL = new URL('../../../cli/bin/quell.js', import.meta.url).pathname;

/** Runs `quell …` to completion with this environment and returns what it printed. */
export const quellCli = (env: NodeJS.ProcessEnv) => (...args: string[]): string => execFileSync(process.execPath, [QUELL, ...args], { env, encoding: 'utf8' });

/**
 * `quell server` in its own process with this environment; resolves with
 * its address once it says it is running. Its output is read all along (a
 * chatty server never blocks on a full pipe) and kept for the error message.
 */
export async function startQuellServer(env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [QUELL, 'server'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stderr!.on('data', keep);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`quell server did not start within ${timeoutMs / 1000} s:\n${output}`));
    }, timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      keep(chunk);
      const match = /Quell is running at (\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`quell server exited with ${code}:\n${output}`));
    });
  });
  return { child, url };
}
