import { spawn } from 'node:child_process';

export interface RunResult { code: number; stdout: string; stderr: string }

/**
 * How executors run system commands: argument vectors, never a shell, so an
 * entity name from an attacker stays one argument. Tests substitute a
 * recording runner where this machine cannot host the real thing.
 */
export interface CommandRunner {
  run(command: string, args: readonly string[], input?: string): Promise<RunResult>;
}

export const systemRunner: CommandRunner = {
  run(command, args, input) {
    return new Promise((resolve, reject) => {
      // The C locale: executors read these commands' answers and error messages, which are English there.
      // eslint-disable-next-line no-restricted-syntax -- the child inherits the agent's environment; nothing is configured from it
      const env = { ...process.env, LC_ALL: 'C' };
      const child = spawn(command, [...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      if (child.stdin) {
        // A command that exits before reading its input must not take the agent down with EPIPE.
        child.stdin.on('error', () => {});
        child.stdin.end(input);
      }
    });
  },
};

/** Runs a command and throws with its stderr when it fails. */
export async function mustRun(runner: CommandRunner, command: string, args: readonly string[], input?: string): Promise<string> {
  const result = await runner.run(command, args, input);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout;
}
