import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FirstBootReport } from './test/code-restriction-reboot-lab.ts';
import type { CodeRestrictionSnapshot } from './restrict-code.linux.ts';
import { exactOptions, isBindOfItself, parseMountinfo, restrictCodeExecutionIn, restrictionRecords, topmostAt } from './restrict-code.linux.ts';

const exec = promisify(execFile);
const LAB = new URL('./test/code-restriction-lab.ts', import.meta.url).pathname;
const REBOOT_LAB = new URL('./test/code-restriction-reboot-lab.ts', import.meta.url).pathname;
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
  refusal: string;
  sourcesAfterRefusal: (string | null)[];
  afterRetry: string;
}

/** Runs a lab script in a private mount namespace of its own and returns its JSON report. */
async function inNamespace<T>(script: string, args: string[]): Promise<T> {
  const { stdout } = await exec('unshare', ['-m', '--propagation', 'private', process.execPath, '--import', 'tsx', script, ...args], { cwd: ROOT, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}

describe('restrict code execution / remove code restriction, for real in a private mount namespace', () => {
  const base = mkdtempSync(join(tmpdir(), 'quell-restrict-'));
  // Only the lab's own paths: other tests may add network namespaces (mounts under /run/netns) meanwhile.
  const labMounts = () => parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(base));
  const hostMounts = labMounts();
  let report: LabReport;

  beforeAll(async () => {
    report = await inNamespace<LabReport>(LAB, [base]);
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

  it('removal refuses to touch another file system mounted where the restriction was, says which, and completes once it is gone', () => {
    const { dirs } = report;
    expect(report.refusal).toContain(`${dirs.tmpfs}: tmpfs quellother is mounted there now, not the restricted tmpfs quelltest; it was left alone`);
    expect(report.refusal).toContain(`${dirs.plain}: tmpfs quellother is mounted there now, not the bind of the directory onto itself made by the restriction; it was left in place`);
    expect(report.refusal).not.toContain(dirs.nosuidNoatime);
    expect(report.sourcesAfterRefusal).toEqual(['quellother', 'quellother']);
    expect(report.afterRetry).toBe(report.before);
  });

  it('the host mounts were never touched', () => {
    expect(hostMounts).toEqual([]);
    expect(labMounts()).toEqual([]);
  });
});

interface AfterRebootReport {
  fillers: number;
  stateBefore: Record<string, unknown[]>;
  idsBefore: Record<string, number | null>;
  runsBefore: Record<string, string>;
  reappliedOutput: string;
  idsReapplied: Record<string, number | null>;
  stateReapplied: Record<string, { options: string }[]>;
  runsReapplied: Record<string, string>;
  undoOutput: string;
  undoError: string;
  stateAfterUndo: Record<string, unknown[]>;
  runsAfterUndo: Record<string, string>;
}

/**
 * A reboot, simulated: the first boot restricts in one mount namespace and
 * ends; the next starts in a new one with new mount ids, tmpfs made afresh
 * and the bind mount gone, restricts again as the agent does at start, and
 * then undoes the original action with the first boot's snapshot.
 */
describe('undo of a code restriction after a reboot, for real in successive mount namespaces', () => {
  const base = mkdtempSync(join(tmpdir(), 'quell-restrict-reboot-'));
  const sameBootBase = mkdtempSync(join(tmpdir(), 'quell-restrict-legacy-'));
  const labMounts = () => parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(base) || m.mountPoint.startsWith(sameBootBase));
  const hostMounts = labMounts();
  const RAN = { tmpfs: 'ran', plain: 'ran', nosuidNoatime: 'ran' };
  let first: FirstBootReport;
  let current: AfterRebootReport;
  let legacy: AfterRebootReport;
  let sameBoot: { legacy: CodeRestrictionSnapshot; runsRestricted: Record<string, string>; undoOutput: string; unchanged: boolean; runsAfterUndo: Record<string, string> };

  beforeAll(async () => {
    first = await inNamespace<FirstBootReport>(REBOOT_LAB, ['first', base]);
    const reportFile = join(base, 'first-boot.json');
    writeFileSync(reportFile, JSON.stringify(first));
    current = await inNamespace<AfterRebootReport>(REBOOT_LAB, ['after-reboot', base, reportFile, 'new']);
    legacy = await inNamespace<AfterRebootReport>(REBOOT_LAB, ['after-reboot', base, reportFile, 'legacy']);
    sameBoot = await inNamespace(REBOOT_LAB, ['legacy-same-boot', sameBootBase]);
  }, 120_000);
  afterAll(() => {
    rmSync(base, { recursive: true, force: true });
    rmSync(sameBootBase, { recursive: true, force: true });
  });

  it('the snapshot names each mount by point, root, source, type and prior options, with no mount id', () => {
    const { dirs } = first;
    expect(first.snapshot.directories).toEqual([
      { directory: dirs.tmpfs, outcome: 'remounted', mount: { mountPoint: dirs.tmpfs, root: '/', source: 'quelltest', fsType: 'tmpfs', priorOptions: 'rw,relatime' } },
      { directory: dirs.plain, outcome: 'bind_mounted', mount: { mountPoint: dirs.plain, root: expect.stringMatching(/\/plain$/), source: expect.any(String), fsType: expect.any(String), priorOptions: expect.any(String) } },
      { directory: dirs.nosuidNoatime, outcome: 'remounted', mount: { mountPoint: dirs.nosuidNoatime, root: '/', source: 'quelltest', fsType: 'tmpfs', priorOptions: 'rw,nosuid,noatime' } },
      { directory: dirs.locked, outcome: 'already_restricted', mount: { mountPoint: dirs.locked, root: '/', source: 'quelltest', fsType: 'tmpfs', priorOptions: 'rw,nosuid,nodev,noexec,relatime' } },
      { directory: dirs.missing, outcome: 'missing', mount: null },
    ]);
    expect(JSON.stringify(first.snapshot)).not.toMatch(/mountId|priorLines/);
  });

  it.each([['current', () => current], ['previous (mountId, priorLines)', () => legacy]])('the next boot gives every mount an id the first boot did not use (%s snapshot format)', (_format, report) => {
    const used = Object.values(first.idsRestricted).filter((id) => id !== null);
    const now = Object.values(report().idsReapplied).filter((id) => id !== null);
    expect(now).toHaveLength(used.length);
    for (const id of now) expect(used).not.toContain(id);
  });

  it.each([['current', () => current], ['previous (mountId, priorLines)', () => legacy]])(
    'restricting again at start and undoing the original action leaves every directory as before the restriction, and scripts run again (%s snapshot format)',
    (_format, report) => {
      const { dirs } = first;
      const next = report();
      // The next boot starts as the first did: fresh tmpfs mounts, no bind mount, nothing restricted.
      expect(next.stateBefore).toEqual(first.stateBefore);
      expect(next.runsBefore).toEqual(RAN);
      expect(next.reappliedOutput).toContain(`${dirs.plain} bind-mounted onto itself`);
      expect(next.stateReapplied.plain).toEqual([expect.objectContaining({ options: expect.stringMatching(/^rw,nosuid,nodev,noexec/) })]);
      expect(next.runsReapplied).toEqual({ tmpfs: 'EACCES', plain: 'EACCES', nosuidNoatime: 'EACCES' });

      expect(next.undoError).toBe('');
      expect(next.undoOutput).toBe(`Removed code restriction: ${dirs.tmpfs} back to rw,relatime; ${dirs.plain} back to no mount of its own; ${dirs.nosuidNoatime} back to rw,nosuid,noatime`);
      // Prior per-mount options on the remounted tmpfs, no bind mount left at the plain directory.
      expect(next.stateAfterUndo).toEqual(first.stateBefore);
      expect(next.stateAfterUndo.plain).toEqual([]);
      expect(next.runsAfterUndo).toEqual(RAN);
    },
  );

  it('a snapshot in the previous format is undone on the same boot too, leaving mountinfo exactly as before', () => {
    expect(sameBoot.legacy.directories.every((d) => 'mountId' in d && 'priorLines' in d)).toBe(true);
    expect(sameBoot.runsRestricted).toEqual({ tmpfs: 'EACCES', plain: 'EACCES', nosuidNoatime: 'EACCES' });
    expect(sameBoot.undoOutput).toContain('back to no mount of its own');
    expect(sameBoot.unchanged).toBe(true);
    expect(sameBoot.runsAfterUndo).toEqual(RAN);
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

  // After a reboot: /tmp is a new tmpfs restricted again at start, /home a bind mount made again at start.
  const afterReboot = parseMountinfo([
    '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '30 27 0:40 / /tmp rw,nosuid,nodev,noexec,relatime shared:2 - tmpfs tmpfs rw,size=100k',
    '31 27 254:0 /home /home rw,nosuid,nodev,noexec,relatime - ext4 /dev/vda rw',
    '32 27 254:0 /srv/elsewhere /var/tmp rw,relatime - ext4 /dev/vda rw',
    '33 31 0:41 / /home rw,relatime - tmpfs tmpfs rw',
  ].join('\n'));

  it('tells a bind of a directory onto itself from a file system or another directory mounted there', () => {
    const byId = (id: number) => afterReboot.find((m) => m.id === id)!;
    expect([30, 31, 32, 33].map((id) => [id, isBindOfItself(afterReboot, byId(id))])).toEqual([[30, false], [31, true], [32, false], [33, false]]);
  });

  it('reads a snapshot of the previous format by stable names: the found mount from its mountinfo line, the bind mount from the file system holding the directory', () => {
    const previous = {
      directories: [
        { directory: '/tmp', outcome: 'remounted', mountId: 88, priorOptions: 'rw,relatime', priorLines: ['88 27 0:31 / /tmp rw,relatime shared:5 - tmpfs tmpfs rw,size=100k'] },
        { directory: '/var/tmp', outcome: 'bind_mounted', mountId: 91, priorOptions: 'rw,relatime', priorLines: [] },
        { directory: '/dev/shm', outcome: 'already_restricted', mountId: 25, priorOptions: 'rw,nosuid,nodev,noexec', priorLines: ['25 24 0:23 / /dev/shm rw,nosuid,nodev,noexec - tmpfs shm rw'] },
        { directory: '/home', outcome: 'missing', mountId: null, priorOptions: null, priorLines: [] },
      ],
    };
    expect(restrictionRecords(previous, parseMountinfo('27 1 254:0 / / rw,relatime - ext4 /dev/vda rw'))).toEqual([
      { directory: '/tmp', outcome: 'remounted', mount: { mountPoint: '/tmp', root: '/', source: 'tmpfs', fsType: 'tmpfs', priorOptions: 'rw,relatime' } },
      { directory: '/var/tmp', outcome: 'bind_mounted', mount: { mountPoint: '/var/tmp', root: '/var/tmp', source: '/dev/vda', fsType: 'ext4', priorOptions: 'rw,relatime' } },
      { directory: '/dev/shm', outcome: 'already_restricted', mount: { mountPoint: '/dev/shm', root: '/', source: 'shm', fsType: 'tmpfs', priorOptions: 'rw,nosuid,nodev,noexec' } },
      { directory: '/home', outcome: 'missing', mount: null },
    ]);
    // With the bind mount made again at start, the file system holding the directory is the one under it.
    const bindMadeAgain = parseMountinfo([
      '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
      '45 27 254:0 /var/tmp /var/tmp rw,nosuid,nodev,noexec,relatime - ext4 /dev/vda rw',
    ].join('\n'));
    expect(restrictionRecords({ directories: [previous.directories[1]] }, bindMadeAgain))
      .toEqual([{ directory: '/var/tmp', outcome: 'bind_mounted', mount: { mountPoint: '/var/tmp', root: '/var/tmp', source: '/dev/vda', fsType: 'ext4', priorOptions: 'rw,relatime' } }]);
  });

  it('takes a current snapshot as it is and refuses what is not a snapshot', () => {
    const current = { directories: [{ directory: '/tmp', outcome: 'remounted', mount: { mountPoint: '/tmp', root: '/', source: 'tmpfs', fsType: 'tmpfs', priorOptions: 'rw,relatime' } }] };
    expect(restrictionRecords(current, afterReboot)).toEqual(current.directories);
    for (const value of [undefined, null, {}, { directories: [{ directory: '/tmp', outcome: 'remounted' }] }, { directories: [{ directory: '/tmp', outcome: 'relabelled', mount: null }] },
      { directories: [{ directory: '/tmp', outcome: 'remounted', mount: { mountPoint: '/tmp' } }] }]) {
      expect(restrictionRecords(value, afterReboot)).toBeNull();
    }
  });

  it('refuses directory lists that are not plain absolute paths', () => {
    expect(() => restrictCodeExecutionIn(['tmp'])).toThrow(/not a plain absolute directory/);
    expect(() => restrictCodeExecutionIn(['/tmp/../etc'])).toThrow(/not a plain absolute directory/);
  });
});
