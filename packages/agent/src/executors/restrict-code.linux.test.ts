import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CodeRestrictionSnapshot } from './restrict-code.linux.ts';
import { exactOptions, parseMountinfo, restrictCodeExecutionIn, topmostAt } from './restrict-code.linux.ts';

const exec = promisify(execFile);
const LAB = new URL('./code-restriction-lab.ts', import.meta.url).pathname;
const ROOT = new URL('../../../../', import.meta.url).pathname;

interface LabReport {
  dirs: Record<'tmpfs' | 'plain' | 'nosuidNoatime' | 'locked' | 'missing', string>;
  before: string;
  optionsBefore: Record<string, string | null>;
  runsBefore: Record<string, string>;
  restrictedOutput: string;
  snapshot: CodeRestrictionSnapshot;
  optionsRestricted: Record<string, string | null>;
  runsRestricted: Record<string, string>;
  removedOutput: string;
  afterRemoval: string;
  runsAfterRemoval: Record<string, string>;
  afterBusyRemoval: string;
  unmounts: string[];
  rollbackError: string;
  afterRollback: string;
}

describe('restrict code execution / remove code restriction, for real in a private mount namespace', () => {
  const base = mkdtempSync(join(tmpdir(), 'quell-restrict-'));
  // Only the lab's own paths: other tests may add network namespaces (mounts under /run/netns) meanwhile.
  const labMounts = () => parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(base));
  const hostMounts = labMounts();
  let report: LabReport;

  beforeAll(async () => {
    const { stdout } = await exec('unshare', ['-m', '--propagation', 'private', process.execPath, '--import', 'tsx', LAB, base], { cwd: ROOT, timeout: 60_000 });
    report = JSON.parse(stdout.trim().split('\n').at(-1)!) as LabReport;
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('a script copied into a user-writable directory runs before, is refused with EACCES while restricted, and runs again after removal', () => {
    expect(report.runsBefore).toEqual({ tmpfs: 'ran', plain: 'ran', nosuidNoatime: 'ran' });
    expect(report.runsRestricted).toEqual({ tmpfs: 'EACCES', plain: 'EACCES', nosuidNoatime: 'EACCES' });
    expect(report.runsAfterRemoval).toEqual({ tmpfs: 'ran', plain: 'ran', nosuidNoatime: 'ran' });
  });

  it('restricts with noexec,nosuid,nodev and keeps the other flags; a directory without its own mount is bind-mounted onto itself first', () => {
    const { dirs } = report;
    expect(report.optionsBefore).toEqual({ tmpfs: 'rw,relatime', plain: null, nosuidNoatime: 'rw,nosuid,noatime', locked: 'rw,nosuid,nodev,noexec,relatime', missing: null });
    expect(report.optionsRestricted).toEqual({
      tmpfs: 'rw,nosuid,nodev,noexec,relatime', plain: expect.stringMatching(/^rw,nosuid,nodev,noexec/), nosuidNoatime: 'rw,nosuid,nodev,noexec,noatime',
      locked: 'rw,nosuid,nodev,noexec,relatime', missing: null,
    });
    expect(report.snapshot.directories.map((d) => [d.directory, d.outcome])).toEqual([
      [dirs.tmpfs, 'remounted'], [dirs.plain, 'bind_mounted'], [dirs.nosuidNoatime, 'remounted'], [dirs.locked, 'already_restricted'], [dirs.missing, 'missing'],
    ]);
    expect(report.restrictedOutput).toContain(`${dirs.plain} bind-mounted onto itself`);
    expect(report.restrictedOutput).toContain(`${dirs.missing} does not exist, skipped`);
    expect(report.restrictedOutput).toContain('allowing only approved binaries everywhere is not implemented yet');
  });

  it('removal leaves /proc/self/mountinfo exactly as it was: prior option strings, no bind mount left behind', () => {
    expect(report.afterRemoval).toBe(report.before);
    expect(report.removedOutput).toContain(`${report.dirs.nosuidNoatime} back to rw,nosuid,noatime`);
    expect(report.removedOutput).toContain(`${report.dirs.plain} back to no mount of its own`);
  });

  it('removal takes the bind mount away even while a process works inside it (lazy unmount once the plain one is refused)', () => {
    expect(report.unmounts).toEqual([`-- ${report.dirs.plain}`, `-l -- ${report.dirs.plain}`]);
    expect(report.afterBusyRemoval).toBe(report.before);
  });

  it('when one directory cannot be restricted, those already done are put back before the failure is reported', () => {
    expect(report.rollbackError).toContain('permission denied (simulated)');
    expect(report.afterRollback).toBe(report.before);
  });

  it('the host mounts were never touched', () => {
    expect(hostMounts).toEqual([]);
    expect(labMounts()).toEqual([]);
  });
});

describe('mount bookkeeping', () => {
  it('reads mountinfo, unescaping mount points, and finds the mount stacked on top', () => {
    const mounts = parseMountinfo([
      '25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=100k',
      '30 25 0:27 / /dev/shm rw,nosuid,relatime shared:4 master:1 - tmpfs tmpfs rw',
      '31 27 254:0 /a\\040b /mnt/a\\040b rw - ext4 /dev/vda rw',
    ].join('\n'));
    expect(topmostAt(mounts, '/dev/shm')).toMatchObject({ id: 30, options: 'rw,nosuid,relatime', fsType: 'tmpfs' });
    expect(topmostAt(mounts, '/mnt/a b')).toMatchObject({ id: 31, root: '/a b' });
    expect(topmostAt(mounts, '/nowhere')).toBeUndefined();
  });

  it('always passes a complete option list, clearing each flag that is not wanted', () => {
    expect(exactOptions(new Set(['rw', 'relatime']))).toEqual(['rw', 'exec', 'suid', 'dev', 'diratime', 'relatime']);
    expect(exactOptions(new Set(['ro', 'nosuid', 'noatime', 'nodiratime']))).toEqual(['ro', 'exec', 'nosuid', 'dev', 'nodiratime', 'noatime']);
    expect(exactOptions(new Set(['rw']))).toEqual(['rw', 'exec', 'suid', 'dev', 'diratime', 'strictatime']);
  });

  it('refuses directory lists that are not plain absolute paths', () => {
    expect(() => restrictCodeExecutionIn(['tmp'])).toThrow(/not a plain absolute directory/);
    expect(() => restrictCodeExecutionIn(['/tmp/../etc'])).toThrow(/not a plain absolute directory/);
  });
});
