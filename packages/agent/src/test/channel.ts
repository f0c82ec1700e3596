import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, readFileSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentLog } from '../agent.ts';
import { decodeLine } from '../journal-format.ts';
import type { CommandRunner, RunResult } from '../runner.ts';

/** An agent log kept in memory, for assertions on what the agent said and when. */
export interface RecordingLog extends AgentLog {
  entries: Array<{ level: 'info' | 'warn'; msg: string; fields: Record<string, unknown> }>;
  count(msg: string): number;
}

export function recordingLog(): RecordingLog {
  const entries: RecordingLog['entries'] = [];
  return {
    entries,
    info: (msg, fields = {}) => void entries.push({ level: 'info', msg, fields: fields as Record<string, unknown> }),
    warn: (msg, fields = {}) => void entries.push({ level: 'warn', msg, fields: fields as Record<string, unknown> }),
    count: (msg) => entries.filter((e) => e.msg === msg).length,
  };
}

/** A runner that runs nothing and remembers every command it was asked to run. */
export interface RecordingRunner extends CommandRunner { calls: Array<{ command: string; args: readonly string[] }> }

export function recordingRunner(): RecordingRunner {
  const calls: RecordingRunner['calls'] = [];
  return {
    calls,
    async run(command, args): Promise<RunResult> {
      calls.push({ command, args });
      return { code: 1, stdout: '', stderr: 'this runner only records' };
    },
  };
}

type JournalLine = { k: 'start' | 'done' | 'result_ack' | 'local' | 'local_ack'; actionId: string; nonce?: string; outcome?: string; error?: string };

/** The agent's journal as the agent reads it back: one entry per line; a line that fails its checksum or shape is no entry. */
export function journalEntries(agentDir: string): JournalLine[] {
  const file = join(agentDir, 'journal.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).flatMap((line) => {
    const decoded = decodeLine(Buffer.from(line), true);
    return 'entry' in decoded ? [decoded.entry as JournalLine] : [];
  });
}

/** How many times the agent began carrying out an action (one journal start entry per run). */
export const runsOf = (agentDir: string, actionId: string): number => journalEntries(agentDir).filter((e) => e.k === 'start' && e.actionId === actionId).length;

/**
 * A file of `bytes` zero bytes, sparse so that it costs no disk: hashing it
 * takes real time, which makes quarantining it a real effect slow enough to
 * interrupt.
 */
export function makeSparseFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w', 0o644);
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * A size of sparse file whose hashing takes about `targetMs` on this machine
 * (measured, not guessed), so that a quarantine of it lasts long enough to be
 * interrupted on a fast machine and a slow one alike.
 */
export async function slowFileBytes(dir: string, targetMs: number): Promise<number> {
  const probe = join(dir, 'hash-speed-probe');
  const probeBytes = 64 * 1024 * 1024;
  makeSparseFile(probe, probeBytes);
  const started = performance.now();
  await sha256OfFile(probe);
  const elapsed = Math.max(performance.now() - started, 1);
  const mib = 1024 * 1024;
  return Math.min(Math.max(Math.round((probeBytes * targetMs) / elapsed / mib), 64), 8192) * mib;
}

/** The JSON lines a spawned agent wrote, in order. */
export function agentLogLines(output: string): Array<{ level: string; time: number; msg: string; [field: string]: unknown }> {
  return output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as ReturnType<typeof agentLogLines>[number]);
}
