import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemRunner } from '../runner.ts';
import type { ExecutionResult } from './executor.ts';
import type { XattrRecord } from './file-attributes.linux.ts';
import type { EndedProcess } from './file-processes.linux.ts';
import { DAEMON_MAY_READ } from './file-attributes-test-support.ts';
import { quarantineFile, restoreFile } from './quarantine.linux.ts';
import { executionContext } from './test/recording-runner.ts';

const exec = promisify(execFile);
const LAB = new URL('./test/quarantine-lab.ts', import.meta.url).pathname;
const ROOT = new URL('../../../../', import.meta.url).pathname;

interface Snapshot { xattrs: XattrRecord; endedProcesses: EndedProcess[]; killedPids: number[]; otherLinks?: { count: number; found: string[] }; vaultFile: string }
type Result = ExecutionResult & { snapshot: Snapshot; error?: string; actionId: string };
interface Attributes { xattrs: string; caps: string }

/** Every attribute of a file and its capabilities, read by the attr and libcap tools themselves, never by the code under test. */
function attributes(path: string): Attributes {
  const xattrs = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'base64', path]).toString().split('\n').filter((l) => l && !l.startsWith('#')).join('\n');
  return { xattrs, caps: execFileSync('getcap', [path]).toString().trim().replace(`${path} `, '') };
}
const names = (attrs: Attributes): string[] => attrs.xattrs.split('\n').filter(Boolean).map((line) => line.slice(0, line.indexOf('=')));


/** Runs the lab script (quarantine-lab.ts), in a private mount namespace of its own when it mounts, and returns its JSON report. */
async function lab<T>(args: string[], namespace: boolean): Promise<T> {
  const node = [process.execPath, '--import', 'tsx', LAB, ...args];
  const [command, ...rest] = namespace ? ['unshare', '-m', '--propagation', 'private', ...node] : node;
  const { stdout } = await exec(command!, rest, { cwd: ROOT, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check();) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('quarantine and restore on the same file system as the vault', () => {
  let agentDir: string;
  let files: string;
  beforeAll(() => {
    const base = mkdtempSync(join(tmpdir(), 'quell-quarantine-'));
    agentDir = join(base, 'agent');
    files = join(base, 'files');
    mkdirSync(files);
  });
  afterAll(() => rmSync(join(files, '..'), { recursive: true, force: true }));

  /** The snapshot goes through JSON, as it does through the agent's journal. */
  const quarantine = async (path: string): Promise<{ output: string; snapshot: Snapshot }> => {
    const result = await quarantineFile(executionContext(systemRunner, { type: 'quarantine_file', entity: { name: path, path } }, { agentDir }));
    return { output: result.output, snapshot: JSON.parse(JSON.stringify(result.snapshot)) as Snapshot };
  };
  const restore = (path: string, priorSnapshot: unknown) =>
    restoreFile(executionContext(systemRunner, { type: 'restore_file', entity: { name: path, path } }, { agentDir, priorSnapshot: JSON.parse(JSON.stringify(priorSnapshot)) }));

  /** A file owned by nobody with what the audit found lost: a file capability, an ACL entry, a user.* and a trusted.* attribute. */
  function decorated(name: string): string {
    const path = join(files, name);
    writeFileSync(path, '#!/bin/sh\necho payload\n');
    execFileSync('chown', ['65534:65534', path]);
    execFileSync('chmod', ['750', path]);
    execFileSync('setcap', ['cap_net_raw+ep', path]);
    execFileSync('setfattr', ['-n', 'system.posix_acl_access', '-v', DAEMON_MAY_READ, path]);
    execFileSync('setfattr', ['-n', 'user.origin', '-v', 'dropped by invoice.pdf', path]);
    execFileSync('setfattr', ['-n', 'trusted.quell', '-v', '0x00ff10', path]);
    return path;
  }

  it('records the capability, ACL, trusted.* and user.* attributes, and restore puts every one back after the owner (getfattr and getcap agree)', async () => {
    const path = decorated('evil.bin');
    const before = attributes(path);
    expect(names(before)).toEqual(['security.capability', 'system.posix_acl_access', 'trusted.quell', 'user.origin']);
    expect(before.caps).toBe('cap_net_raw=ep');

    const quarantined = await quarantine(path);
    expect(quarantined.output).toContain('recorded its extended attributes security.capability, system.posix_acl_access, trusted.quell, user.origin');
    expect(quarantined.snapshot.xattrs).toMatchObject({ notKept: [], notKeptCount: 0 });
    expect(quarantined.snapshot.xattrs.kept.map((x) => x.name)).toEqual(names(before));
    expect(existsSync(path)).toBe(false);
    expect(statSync(quarantined.snapshot.vaultFile).mode & 0o7777).toBe(0);

    const restored = await restore(path, quarantined.snapshot);
    expect(restored.output).toContain('extended attributes back and checked: security.capability, system.posix_acl_access, trusted.quell, user.origin');
    expect(attributes(path)).toEqual(before);
    const stat = statSync(path);
    expect([stat.uid, stat.gid, stat.mode & 0o7777]).toEqual([65534, 65534, 0o750]);
    expect(existsSync(quarantined.snapshot.vaultFile)).toBe(false);
  });

  it('an attribute this file system refuses fails the restore naming it: the file stays in the vault with no permission bits, nothing appears at its path, and the true record restores it', async () => {
    const path = decorated('refused.bin');
    const before = attributes(path);
    const quarantined = await quarantine(path);
    // system.* holds only what a file system implements (ACLs here): any other name is refused by the kernel.
    const tampered = structuredClone(quarantined.snapshot);
    tampered.xattrs.kept.push({ name: 'system.quell_label', value: 'AQID' });
    await expect(restore(path, tampered)).rejects.toThrow(
      `the extended attribute system.quell_label of ${path} could not be put back (Operation not supported): not restored, the file stays in the quarantine vault`,
    );
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(files).filter((name) => name.startsWith('.quell-restore-'))).toEqual([]);
    expect(statSync(quarantined.snapshot.vaultFile).mode & 0o7777).toBe(0);

    await restore(path, quarantined.snapshot);
    expect(attributes(path)).toEqual(before);
  });

  it('attribute names with `=`, a backslash, spaces, a newline and accents, an empty value and a binary one come back exactly', async () => {
    const path = join(files, 'odd-names.bin');
    writeFileSync(path, 'odd\n');
    const odd = ['user.a=b', 'user.back\\slash', 'user.two words', 'user.line\nbreak', 'user.café', 'user.empty'];
    // setfattr reads \ooo escapes in a name: every byte but lowercase letters and dots goes that way here, so each name is set as written.
    const escaped = (name: string) => [...Buffer.from(name)].map((b) => (/[a-z.]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`)).join('');
    for (const name of odd.slice(0, -1)) execFileSync('setfattr', ['-n', escaped(name), '-v', '0sAAEC/w==', path]);
    execFileSync('setfattr', ['-n', 'user.empty', path]);
    const before = attributes(path);
    expect(names(before)).toHaveLength(odd.length);

    const quarantined = await quarantine(path);
    expect(quarantined.snapshot.xattrs.kept.map((x) => x.name).sort()).toEqual([...odd].sort());
    expect(quarantined.snapshot.xattrs.kept.find((x) => x.name === 'user.empty')?.value).toBe('');
    await restore(path, quarantined.snapshot);
    expect(attributes(path)).toEqual(before);
  });

  it('a file with two other hard links: the output says how many and where, that its content stays reachable through them and that quarantining them removes it; they are left in place', async () => {
    const path = join(files, 'linked.bin');
    writeFileSync(path, 'linked payload\n');
    const others = [join(files, 'linked-copy.bin'), join(files, 'linked-backup.bin')];
    for (const other of others) linkSync(path, other);

    const quarantined = await quarantine(path);
    expect(quarantined.snapshot.otherLinks?.count).toBe(2);
    expect([...quarantined.snapshot.otherLinks!.found].sort()).toEqual([...others].sort());
    expect(quarantined.output).toMatch(/2 other hard links to the same file remain \(found: .+\): its content stays reachable through them, and quarantining those paths removes it/);
    for (const other of others) {
      expect(quarantined.output).toContain(other);
      expect(readFileSync(other, 'utf8')).toBe('linked payload\n');
    }
  });

  it('a file with a single link says nothing about links and records no attributes when it has none', async () => {
    const path = join(files, 'plain.bin');
    writeFileSync(path, 'plain\n');
    const quarantined = await quarantine(path);
    expect(quarantined.snapshot.otherLinks).toBeUndefined();
    expect(quarantined.snapshot.xattrs).toEqual({ kept: [], notKept: [], notKeptCount: 0 });
    expect(quarantined.output).not.toMatch(/hard link|extended attribute/);
    const restored = await restore(path, quarantined.snapshot);
    expect(restored.output).toContain('it carried no extended attributes, and carries none');
    expect(attributes(path)).toEqual({ xattrs: '', caps: '' });
  });
});

interface RoundTrip {
  before: Attributes;
  quarantined: Result;
  whileQuarantined: { atPath: boolean; vaultMode: string | null };
  restored: Result;
  after: Attributes | null;
  modeAfter: string | null;
  vaultLeft: boolean;
}
interface AcrossReport {
  dirs: { tmpfs: string; small: string; disk: string };
  tmpfsToDisk: RoundTrip;
  diskToTmpfs: RoundTrip;
  inheritedAcl: RoundTrip;
  beyondBound: RoundTrip;
  cramp: { before: Attributes; noRoom: Result; afterNoRoom: { atPath: boolean; vaultMode: string | null; folder: string[] }; withRoom: Result; after: Attributes | null };
  hardLinks: { quarantined: Result; others: string[]; othersLeft: (string | null)[]; onItsFileSystem: { quarantined: Result; other: string } };
}

describe('quarantine and restore across file systems (tmpfs and disk), for real in a private mount namespace', () => {
  let base: string;
  let report: AcrossReport;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'quell-quarantine-across-'));
    report = await lab<AcrossReport>(['across', base], true);
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  const all = ['security.capability', 'system.posix_acl_access', 'trusted.quell', 'user.origin'];

  it.each(['tmpfsToDisk', 'diskToTmpfs'] as const)('%s: the copy in the vault keeps nothing, the record keeps everything, and the file comes back with its capability, ACL, trusted.* and user.* attributes', (way) => {
    const trip = report[way];
    expect(names(trip.before)).toEqual(all);
    expect(trip.before.caps).toBe('cap_net_raw=ep');
    expect(trip.quarantined.error).toBeUndefined();
    expect(trip.quarantined.snapshot.xattrs.kept.map((x) => x.name)).toEqual(all);
    expect(trip.whileQuarantined).toEqual({ atPath: false, vaultMode: '0' });
    expect(trip.restored.error).toBeUndefined();
    expect(trip.restored.output).toContain(`extended attributes back and checked: ${all.join(', ')}`);
    expect(trip.after).toEqual(trip.before);
    expect(trip.vaultLeft).toBe(false);
  });

  it('keeps the set-user-id bit along with the capability when both come back across file systems', () => {
    expect(report.diskToTmpfs.modeAfter).toBe('4750');
    expect(report.tmpfsToDisk.modeAfter).toBe('750');
  });

  it('a file without an ACL comes back without one, even into a folder whose default ACL a new file there inherits', () => {
    const trip = report.inheritedAcl;
    expect(trip.restored.error).toBeUndefined();
    expect(names(trip.before)).toEqual(['user.origin']);
    expect(trip.after).toEqual(trip.before);
    expect(trip.modeAfter).toBe('640');
  });

  it('beyond 64 KiB of attributes the quarantine still happens: the capability is kept first, what does not fit is named in the output of quarantine and of restore', () => {
    const trip = report.beyondBound;
    expect(trip.quarantined.error).toBeUndefined();
    expect(trip.quarantined.snapshot.xattrs).toMatchObject({ notKept: ['user.v3'], notKeptCount: 1 });
    expect(trip.quarantined.output).toContain('recorded its extended attributes security.capability, user.v1, user.v2');
    expect(trip.quarantined.output).toContain('did not keep 1 more extended attribute (user.v3): past 64 KiB or 128 attributes, or unreadable; restore will not put them back');
    expect(trip.restored.output).toContain('1 extended attribute was not kept when it was quarantined (user.v3) and is not back');
    expect(names(trip.after!)).toEqual(['security.capability', 'user.v1', 'user.v2']);
    expect(trip.after!.caps).toBe('cap_net_raw=ep');
  });

  it('an attribute the file system has no room for fails the restore naming it, leaves the file in the vault and nothing at its path; with room again, the restore completes', () => {
    const { cramp, dirs } = report;
    expect(cramp.noRoom.error).toBe(`the extended attribute user.big of ${dirs.small}/cramped.bin could not be put back (No space left on device): not restored, the file stays in the quarantine vault`);
    expect(cramp.afterNoRoom).toEqual({ atPath: false, vaultMode: '0', folder: ['filler-1', 'filler-2'] });
    expect(cramp.withRoom.error).toBeUndefined();
    expect(cramp.withRoom.output).toContain('extended attributes back and checked: user.big');
    expect(cramp.after).toEqual(cramp.before);
  });

  it('finds other hard links beside the file, deep under /dev/shm and anywhere on its file system, reports them and leaves them in place', () => {
    const { quarantined, others, othersLeft } = report.hardLinks;
    expect(quarantined.snapshot.otherLinks).toEqual({ count: 2, found: others });
    expect(quarantined.output).toContain(`2 other hard links to the same file remain (found: ${others.join(', ')}): its content stays reachable through them, and quarantining those paths removes it`);
    expect(othersLeft).toEqual(['linked payload\n', 'linked payload\n']);

    // Beyond the folders anyone writes to: found from where its file system is mounted.
    const { onItsFileSystem } = report.hardLinks;
    expect(onItsFileSystem.quarantined.snapshot.otherLinks).toEqual({ count: 1, found: [onItsFileSystem.other] });
  });
});

interface ProcessesReport {
  agentPid: number;
  ownChild: number;
  ownChildAlive: boolean;
  'run.sh': Result;
  'run.js': Result;
  'held.bin': Result;
  'evil.so': Result;
  'held-quarantine-only.bin': Result;
}

/** How a child ended: the signal, or its exit code; null while it runs (after a grace period). */
function ended(child: ChildProcess, graceMs = 5000): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), graceMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(signal ?? code);
    });
  });
}

/**
 * The lab process stands for the agent; this test process is its parent
 * (an ancestor of the agent) and holds every file open throughout, the
 * lab's own command line names run.sh, and the lab starts a child of its
 * own that holds held.bin open. None of these may be ended.
 */
describe('stop and quarantine ends every process using the file, and never the agent, its ancestors or its own children', () => {
  let base: string;
  const file = (name: string): string => join(base, 'procs', name);
  const victims: Record<string, ChildProcess> = {};
  const held: number[] = [];
  let report: ProcessesReport;
  const endings: Record<string, NodeJS.Signals | number | null> = {};

  const holding = (name: string): ChildProcess => spawn('sleep', ['300'], { stdio: [openSync(file(name), 'r'), 'ignore', 'ignore'] });
  const fdsOf = (pid: number): string[] => {
    try {
      return readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      return [];
    }
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'quell-quarantine-procs-'));
    const procs = join(base, 'procs');
    mkdirSync(procs);
    writeFileSync(file('run.sh'), 'while :; do sleep 1; done\n');
    // It says when it runs: by then node has read it and closed it.
    writeFileSync(file('run.js'), "require('node:fs').writeFileSync(`${__filename}.started`, '');\nsetInterval(() => {}, 1000);\n");
    writeFileSync(file('held.bin'), 'held\n');
    writeFileSync(file('held-quarantine-only.bin'), 'held too\n');
    // A real shared library (a copy of the C library this process uses), preloaded: mapped by the process, with no descriptor left open.
    const libc = readFileSync('/proc/self/maps', 'utf8').split('\n').map((line) => line.split(/\s+/)[5] ?? '').find((path) => /\/libc\.so\.6$/.test(path))!;
    copyFileSync(libc, file('evil.so'));
    for (const name of ['run.sh', 'run.js', 'held.bin', 'evil.so', 'held-quarantine-only.bin']) held.push(openSync(file(name), 'r'));

    victims['run.sh'] = spawn('sh', ['run.sh'], { cwd: procs, stdio: 'ignore' });
    victims['run.js'] = spawn(process.execPath, ['run.js'], { cwd: procs, stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
    victims['held.bin'] = holding('held.bin');
    victims['evil.so'] = spawn('sleep', ['300'], { stdio: 'ignore', env: { ...process.env, LD_PRELOAD: file('evil.so') } });
    victims['held-quarantine-only.bin'] = holding('held-quarantine-only.bin');
    const pid = (name: string): number => victims[name]!.pid!;
    await waitFor('sh to read run.sh', () => fdsOf(pid('run.sh')).includes(file('run.sh')));
    await waitFor('node to run run.js', () => existsSync(`${file('run.js')}.started`));
    await waitFor('sleep to hold held.bin', () => fdsOf(pid('held.bin')).includes(file('held.bin')));
    await waitFor('sleep to map evil.so', () => readFileSync(`/proc/${pid('evil.so')}/maps`, 'utf8').includes(file('evil.so')));

    report = await lab<ProcessesReport>(['processes', base, file('run.sh')], false);
    for (const [name, child] of Object.entries(victims)) endings[name] = await ended(child, name === 'held-quarantine-only.bin' ? 200 : 5000);
  }, 60_000);
  afterAll(() => {
    for (const child of Object.values(victims)) child.kill('SIGKILL');
    for (const fd of held) closeSync(fd);
    rmSync(base, { recursive: true, force: true });
  });

  const endedBy = (name: keyof ProcessesReport): EndedProcess | undefined => (report[name] as Result).snapshot.endedProcesses.find((p) => p.pid === victims[name]!.pid);

  it.each([
    ['run.sh', 'sh', 'has it open, names it on its command line'],
    ['run.js', 'node', 'names it on its command line'],
    ['held.bin', 'sleep', 'has it open'],
    ['evil.so', 'sleep', 'has it mapped'],
  ] as const)('%s: ends the %s process using it (%s) and says so', (name, comm, why) => {
    const result = report[name];
    expect(result.error).toBeUndefined();
    expect(endedBy(name)).toEqual({ pid: victims[name]!.pid, name: comm, why: why.split(', ') });
    expect(result.output).toContain(`${victims[name]!.pid} ${comm} (${why})`);
    expect(endings[name]).toBe('SIGKILL');
    expect(existsSync(file(name))).toBe(false);
  });

  it('never ends the agent, its parent or the agent\'s own child, though they hold the file open or name it', () => {
    const spared = [report.agentPid, process.pid, process.ppid, report.ownChild, 1];
    for (const name of ['run.sh', 'run.js', 'held.bin', 'evil.so'] as const) {
      expect(report[name].snapshot.endedProcesses.map((p) => p.pid).filter((pid) => spared.includes(pid))).toEqual([]);
      expect(report[name].snapshot.killedPids).toEqual(report[name].snapshot.endedProcesses.map((p) => p.pid));
    }
    expect(report.ownChildAlive).toBe(true);
  });

  it('quarantine_file (without stop) leaves a process that only holds the file open running, as before', () => {
    const result = report['held-quarantine-only.bin'];
    expect(result.error).toBeUndefined();
    expect(result.snapshot.endedProcesses).toEqual([]);
    expect(result.output).not.toContain('ended processes');
    expect(endings['held-quarantine-only.bin']).toBeNull();
  });
});
