import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A Debian root with systemd, D-Bus and cron for the tests that need a real
 * systemd (this machine runs none): made once with debootstrap from the same
 * Debian mirror and release as the machine, and kept here between runs.
 * Containers boot it with a throw-away overlay, so it is never changed.
 */
export const SYSTEMD_ROOT = '/var/cache/quell-test/bookworm-systemd';

/** A lock older than this was left by a run that died: debootstrap takes a minute or two. */
const STALE_LOCK_MS = 15 * 60_000;

function debianMirrorAndRelease(): { mirror: string; release: string } {
  const sources = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'].filter(existsSync).map((path) => readFileSync(path, 'utf8')).join('\n');
  const mirror = /^URIs:\s*(\S+)/m.exec(sources)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(sources)?.[1] ?? 'http://deb.debian.org/debian';
  const release = /^VERSION_CODENAME=(\S+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'bookworm';
  return { mirror, release };
}

/** Unmounts what debootstrap left mounted inside `dir` (its /proc, when it fails half-way), deepest first. */
function unmountInside(dir: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => line.split(' ')[4] ?? '').filter((point) => point.startsWith(`${dir}/`));
  for (const point of mounts.sort().reverse()) execFileSync('umount', ['--lazy', point]);
}

const sleep = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Makes the root unless it is there, saying so in one line, as it takes a
 * minute or two. Test runs started together wait for the one that builds it.
 */
export function ensureSystemdRoot(root = SYSTEMD_ROOT): void {
  const ready = () => existsSync(`${root}/lib/systemd/systemd`);
  if (ready()) return;
  mkdirSync(dirname(root), { recursive: true });
  const lock = `${root}.lock`;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      sleep(1_000);
      if (ready()) return;
    }
  }
  const partial = mkdtempSync(`${root}.partial-`);
  try {
    if (ready()) return;
    const { mirror, release } = debianMirrorAndRelease();
    process.stdout.write(`Making a Debian ${release} root with systemd and cron for the systemd tests, once (in ${root})\n`);
    try {
      execFileSync('debootstrap', ['--variant=minbase', '--include=systemd,systemd-sysv,dbus,cron,libstdc++6', release, partial, mirror], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      const output = `${(error as { stdout?: Buffer }).stdout ?? ''}${(error as { stderr?: Buffer }).stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
      throw new Error(`Could not make the Debian root the systemd tests boot (debootstrap from ${mirror}): ${output}`, { cause: error });
    }
    renameSync(partial, root);
  } finally {
    if (existsSync(partial)) {
      unmountInside(partial);
      rmSync(partial, { recursive: true, force: true });
    }
    rmdirSync(lock);
  }
}
