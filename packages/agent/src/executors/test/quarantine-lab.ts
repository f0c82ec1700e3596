import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandPayload } from '@quell/contracts';
import { systemRunner } from '../../runner.ts';
import type { ExecutionResult } from '../executor.ts';
import { DAEMON_MAY_READ, acl } from '../file-attributes-test-support.ts';
import { quarantineFile, restoreFile } from '../quarantine.linux.ts';
import { executionContext } from './recording-runner.ts';

/**
 * Runs quarantine and restore for real, as the agent would, and prints what
 * it observed as one JSON line for quarantine.linux.test.ts to judge. This
 * process stands for the agent: what it spares, it spares as the agent.
 *
 *   unshare -m --propagation private node --import tsx quarantine-lab.ts across BASE
 *
 * `across` builds file systems in its private mount namespace (tmpfs mounts
 * under BASE, a fresh tmpfs over /dev/shm), so files move between tmpfs and
 * disk both ways; everything mounted disappears with the namespace.
 *
 *   node --import tsx quarantine-lab.ts processes BASE [FILE...]
 *
 * `processes` quarantines the files in BASE/procs that the test's own
 * processes use; the FILE arguments only put those paths on this process's
 * command line.
 */

const [mode, base] = process.argv.slice(2);
if ((mode !== 'across' && mode !== 'processes') || !base) throw new Error('usage: quarantine-lab.ts across|processes BASE [FILE...]');

/** Every attribute of a file and its capabilities, read by the attr and libcap tools themselves, never by the code under test. */
function attributes(path: string): { xattrs: string; caps: string } {
  const xattrs = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'base64', path]).toString().split('\n').filter((l) => l && !l.startsWith('#')).join('\n');
  return { xattrs, caps: execFileSync('getcap', [path]).toString().trim().replace(`${path} `, '') };
}
const modeOf = (path: string): string => (statSync(path).mode & 0o7777).toString(8);

/** An action as the agent carries it out; the snapshot goes through JSON, as it does through the agent's journal. */
async function act(type: CommandPayload['type'], path: string, agentDir: string, priorSnapshot?: unknown): Promise<ExecutionResult & { error?: string; actionId: string }> {
  const ctx = executionContext(systemRunner, { type, entity: { name: path, path } }, { agentDir, priorSnapshot: priorSnapshot === undefined ? undefined : JSON.parse(JSON.stringify(priorSnapshot)) });
  try {
    const result = await (type === 'restore_file' ? restoreFile : quarantineFile)(ctx);
    return { ...result, snapshot: JSON.parse(JSON.stringify(result.snapshot ?? null)), actionId: ctx.command.actionId };
  } catch (error) {
    return { output: '', error: (error as Error).message, actionId: ctx.command.actionId };
  }
}


/** Gives a file what the audit found lost: a file capability, an ACL entry, a user.* and a trusted.* attribute. */
function decorate(path: string): void {
  execFileSync('setcap', ['cap_net_raw+ep', path]);
  execFileSync('setfattr', ['-n', 'system.posix_acl_access', '-v', DAEMON_MAY_READ, path]);
  execFileSync('setfattr', ['-n', 'user.origin', '-v', 'dropped by invoice.pdf', path]);
  execFileSync('setfattr', ['-n', 'trusted.quell', '-v', '0x00ff10', path]);
}

function newFile(path: string, content: string, mode = 0o755): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content, { mode });
}

const mount = (...args: string[]): void => void execFileSync('mount', args);

async function across(): Promise<Record<string, unknown>> {
  const tmpfs = join(base!, 'tmpfs');
  const small = join(base!, 'small');
  const disk = join(base!, 'disk');
  const diskAgent = join(base!, 'agent');
  const tmpfsAgent = join(tmpfs, 'agent');
  for (const dir of [tmpfs, small, disk]) mkdirSync(dir, { recursive: true });
  mount('-t', 'tmpfs', '-o', 'size=16m,mode=1777', 'quelltest', tmpfs);
  // tmpfs charges inodes, links and user.* attributes to one budget: 4 KiB here, 1 KiB for each inode or link.
  mount('-t', 'tmpfs', '-o', 'size=1m,nr_inodes=4,mode=1777', 'quelltest', small);
  mount('-t', 'tmpfs', '-o', 'size=16m,mode=1777', 'quelltest', '/dev/shm');

  /** Quarantine then restore, with the attributes and the vault seen from outside at each step. */
  async function roundTrip(path: string, agentDir: string) {
    const before = attributes(path);
    const quarantined = await act('quarantine_file', path, agentDir);
    const vaultFile = join(agentDir, 'vault', quarantined.actionId);
    const whileQuarantined = { atPath: existsSync(path), vaultMode: existsSync(vaultFile) ? modeOf(vaultFile) : null };
    const restored = await act('restore_file', path, agentDir, quarantined.snapshot);
    return { before, quarantined, whileQuarantined, restored, after: existsSync(path) ? attributes(path) : null, modeAfter: existsSync(path) ? modeOf(path) : null, vaultLeft: existsSync(vaultFile) };
  }

  const fromTmpfs = join(tmpfs, 'files', 'evil.bin');
  newFile(fromTmpfs, '#!/bin/sh\necho payload\n', 0o750);
  decorate(fromTmpfs);
  const tmpfsToDisk = await roundTrip(fromTmpfs, diskAgent);

  const fromDisk = join(disk, 'files', 'evil.bin');
  newFile(fromDisk, '#!/bin/sh\necho payload\n', 0o4750);
  decorate(fromDisk);
  const diskToTmpfs = await roundTrip(fromDisk, tmpfsAgent);

  // A file without an ACL in a folder that gained a default ACL since: a new file there inherits one, the restored one must not.
  const plain = join(disk, 'inherit', 'plain.bin');
  newFile(plain, 'plain\n', 0o640);
  execFileSync('setfattr', ['-n', 'user.origin', '-v', 'mail', plain]);
  execFileSync('setfattr', ['-n', 'system.posix_acl_default', '-v', acl([['user_obj', 7], ['user', 7, 1], ['group_obj', 5], ['mask', 7], ['other', 5]]), join(disk, 'inherit')]);
  const inheritedAcl = await roundTrip(plain, tmpfsAgent);

  // More than 64 KiB of attributes: the capability is kept, the user.* attribute past the bound is named as not kept.
  const crowded = join(tmpfs, 'files', 'crowded.bin');
  newFile(crowded, 'crowded\n');
  execFileSync('setcap', ['cap_net_raw+ep', crowded]);
  const chunk = `0s${Buffer.alloc(30_000, 7).toString('base64')}`;
  for (const n of [1, 2, 3]) execFileSync('setfattr', ['-n', `user.v${n}`, '-v', chunk, crowded]);
  const beyondBound = await roundTrip(crowded, diskAgent);

  // No room left on the tmpfs for the attribute when the file comes back: the restore fails naming it; once there is room, it works.
  const cramped = join(small, 'cramped.bin');
  newFile(cramped, 'cramped\n');
  execFileSync('setfattr', ['-n', 'user.big', '-v', `0s${Buffer.alloc(700, 1).toString('base64')}`, cramped]);
  const crampedBefore = attributes(cramped);
  const crampedQuarantine = await act('quarantine_file', cramped, diskAgent);
  const fillers = ['filler-1', 'filler-2'].map((name) => join(small, name));
  for (const filler of fillers) writeFileSync(filler, '');
  const noRoom = await act('restore_file', cramped, diskAgent, crampedQuarantine.snapshot);
  const vaultFile = join(diskAgent, 'vault', crampedQuarantine.actionId);
  const afterNoRoom = { atPath: existsSync(cramped), vaultMode: existsSync(vaultFile) ? modeOf(vaultFile) : null, folder: readdirSync(small).sort() };
  for (const filler of fillers) rmSync(filler);
  const withRoom = await act('restore_file', cramped, diskAgent, crampedQuarantine.snapshot);
  const cramp = { before: crampedBefore, noRoom, afterNoRoom, withRoom, after: existsSync(cramped) ? attributes(cramped) : null };

  // Two other hard links on the same tmpfs: one beside the file, one deep under /dev/shm.
  const linked = '/dev/shm/quell/evil.bin';
  newFile(linked, 'linked payload\n');
  const others = ['/dev/shm/quell/evil-again.bin', '/dev/shm/cache/a/b/c/evil.bak'];
  for (const other of others) {
    mkdirSync(join(other, '..'), { recursive: true });
    linkSync(linked, other);
  }
  const links = await act('quarantine_file', linked, diskAgent);
  const hardLinks = { quarantined: links, others, othersLeft: others.map((o) => (existsSync(o) ? readFileSync(o, 'utf8') : null)) };

  // A file system mounted where no one writes (/mnt, in this namespace only): its other name is found from its mount point.
  mount('-t', 'tmpfs', '-o', 'size=1m', 'quelltest', '/mnt');
  const installed = '/mnt/opt/app/bin/helper';
  newFile(installed, 'installed payload\n');
  const elsewhere = '/mnt/var/lib/app/cache/helper.old';
  mkdirSync(join(elsewhere, '..'), { recursive: true });
  linkSync(installed, elsewhere);
  const onItsFileSystem = { quarantined: await act('quarantine_file', installed, diskAgent), other: elsewhere };

  return { dirs: { tmpfs, small, disk }, tmpfsToDisk, diskToTmpfs, inheritedAcl, beyondBound, cramp, hardLinks: { ...hardLinks, onItsFileSystem } };
}

async function processes(): Promise<Record<string, unknown>> {
  const procs = join(base!, 'procs');
  const agentDir = join(base!, 'agent');
  // A process this "agent" started itself, holding a file open: it is never ended with the file.
  const own: ChildProcess = spawn('sleep', ['300'], { stdio: [openSync(join(procs, 'held.bin'), 'r'), 'ignore', 'ignore'] });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const results: Record<string, unknown> = { agentPid: process.pid, ownChild: own.pid };
  for (const name of ['run.sh', 'run.js', 'held.bin', 'evil.so']) results[name] = await act('stop_and_quarantine_file', join(procs, name), agentDir);
  results['held-quarantine-only.bin'] = await act('quarantine_file', join(procs, 'held-quarantine-only.bin'), agentDir);
  results.ownChildAlive = own.exitCode === null && own.signalCode === null;
  own.kill('SIGKILL');
  return results;
}

const report = mode === 'across' ? await across() : await processes();
process.stdout.write(`${JSON.stringify(report)}\n`);
