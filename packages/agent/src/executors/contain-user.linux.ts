import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { LINUX_NAMES } from '@quell/contracts';
import { type Guards, guardsFor } from '../guards.linux.ts';
import { mustRun } from '../runner.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';
import { validUnitName } from './service.linux.ts';

/**
 * Contain user: the account can no longer be used and nothing keeps running
 * in its name. Release user puts the two account fields it touched back
 * exactly as they were.
 *
 * - The password is locked (`usermod -L`, a `!` before the hash) so no
 *   password login works.
 * - The account is expired (`chage -E 1`). This is what stops logins that
 *   never look at the password: SSH keys (sshd asks PAM, and pam_unix refuses
 *   an expired account), su/runuser through PAM and cron jobs (cron runs PAM's
 *   account stack before each job). Day 1 (2 January 1970) and not 0: shadow(5)
 *   warns that 0 is read as "never expires" by some tools.
 * - Every process whose real, effective, saved or file-system uid is the
 *   account's, or one of its subordinate uids (/etc/subuid: its rootless
 *   containers), is killed, until none is left; that also ends its sessions.
 *   Where systemd runs, logind is asked to close them too, and the system
 *   services running as the account (`User=`) are stopped first, so that
 *   none starts it again; release starts them again.
 *
 * Refused accounts: the guarded ones (guards.linux.ts): the account this
 * agent runs as, never; uid 0, whatever its name, unless a Global
 * Administrator overrides (killing every uid-0 process takes down init, and
 * a locked root can leave the device unrecoverable). Accounts below UID_MIN
 * (system accounts) and `nobody` only with `parameters.allowSystemAccount:
 * true`: containing a daemon account stops that service too, which is
 * sometimes exactly what is wanted (a web shell running as www-data) but
 * must be asked for explicitly.
 *
 * The snapshot never holds the password hash, only whether it was locked and
 * a SHA-256 fingerprint of the field, so release can tell whether the
 * password was changed meanwhile.
 */

/** The local-account names Debian's useradd accepts; anything else is refused before it reaches a command. */
const USER_NAME = LINUX_NAMES.user;
/** The expiry day contain_user sets: 2 January 1970, long past and unambiguous. */
const EXPIRED_DAY = '1';
const NOBODY_UID = 65534;
/** Sweeps of /proc before giving up on a process that will not die. */
const KILL_ROUNDS = 20;

export interface ContainUserSnapshot {
  name: string;
  uid: number;
  /** The password field started with `!`. */
  wasLocked: boolean;
  /** The password field was empty (no password at all). */
  passwordEmpty: boolean;
  /** SHA-256 of the whole password field, to tell whether it changed; never the field itself. */
  passwordFieldSha256: string;
  /** The shadow account-expiry field exactly as it was; '' means never. */
  expiry: string;
  endedPids: number[];
  /** Its subordinate uid ranges (/etc/subuid), whose processes are its rootless containers'. */
  subordinateUids?: UidRange[];
  /** The system services that ran as it and were stopped (absent in older records). */
  stoppedUnits?: string[];
}

export interface UidRange { start: number; count: number }

interface ShadowEntry { password: string; expiry: string }

function userName(ctx: ExecutionContext): string {
  const name = ctx.command.entity.name;
  if (!USER_NAME.test(name)) throw new ExecutionError(`not a valid local user name: ${JSON.stringify(name)}`);
  return name;
}

async function accountOf(ctx: ExecutionContext, name: string): Promise<{ uid: number; gid: number }> {
  const result = await ctx.runner.run('getent', ['passwd', name]);
  const fields = result.code === 0 ? result.stdout.trim().split('\n')[0]?.split(':') : undefined;
  if (!fields || fields[0] !== name || !/^\d+$/.test(fields[2] ?? '') || !/^\d+$/.test(fields[3] ?? '')) throw new ExecutionError(`no user ${name} on this device`);
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

async function shadowOf(ctx: ExecutionContext, name: string): Promise<ShadowEntry> {
  const result = await ctx.runner.run('getent', ['shadow', name]);
  const fields = result.code === 0 ? result.stdout.trim().split('\n')[0]?.split(':') : undefined;
  // usermod and chage only manage /etc/shadow: a directory (LDAP, SSSD) account has no entry here.
  if (!fields || fields[0] !== name || fields.length < 9) throw new ExecutionError(`${name} has no local shadow entry; only local accounts can be contained`);
  return { password: fields[1]!, expiry: fields[7]! };
}

function uidMin(): number {
  try {
    const match = /^\s*UID_MIN\s+(\d+)/m.exec(readFileSync('/etc/login.defs', 'utf8'));
    if (match) return Number(match[1]);
  } catch {
    // no login.defs: Debian's default applies
  }
  return 1000;
}

function refuseProtected(ctx: ExecutionContext<'contain_user'>, guards: Guards, name: string, uid: number): void {
  const guarded = guards.user(name, uid);
  if (guarded) throw new ExecutionError(guarded);
  const allowed = ctx.command.parameters.allowSystemAccount === true;
  const min = uidMin();
  if ((uid < min || uid === NOBODY_UID) && !allowed) {
    throw new ExecutionError(`${name} (uid ${uid}) is a system account; containing it stops the services that run as it. Set parameters.allowSystemAccount to true to contain it anyway`);
  }
}

const fingerprint = (field: string): string => createHash('sha256').update(field).digest('hex');

/** The subordinate uid ranges /etc/subuid gives the account, by name or by uid: the uids its rootless containers run as. */
export function subordinateUids(name: string, uid: number): UidRange[] {
  let text: string;
  try {
    text = readFileSync('/etc/subuid', 'utf8');
  } catch {
    return []; // none given to anyone
  }
  return text.split('\n').flatMap((line) => {
    const [owner, start, count] = line.trim().split(':');
    if ((owner !== name && owner !== String(uid)) || !/^\d{1,10}$/.test(start ?? '') || !/^\d{1,10}$/.test(count ?? '')) return [];
    return Number(count) > 0 ? [{ start: Number(start), count: Number(count) }] : [];
  });
}

/**
 * Live processes (zombies are already dead) with `uid`, or a uid of one of
 * the `subordinate` ranges, as any of their real, effective, saved or fs uid.
 */
export function processesOf(uid: number, subordinate: readonly UidRange[] = []): number[] {
  const ours = (id: number): boolean => id === uid || subordinate.some((r) => id >= r.start && id < r.start + r.count);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (/^State:\s+[ZX]/m.test(status)) continue;
      const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number) ?? [];
      if (uids.some(ours)) pids.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}

/** The system services (not the user's own session or manager) that the processes run in, from their cgroups. */
function systemServicesOf(pids: readonly number[]): string[] {
  const units = new Set<string>();
  for (const pid of pids) {
    let cgroup: string;
    try {
      cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // cgroup v2 `0::/system.slice/NAME.service/…`, or v1's `N:name=systemd:/system.slice/NAME.service`.
    const unit = /^\d+:(?:name=systemd)?:\/system\.slice\/(?:[^/\n]+\.slice\/)*([^/\n]+\.service)(?:\/|$)/m.exec(cgroup)?.[1];
    if (unit) {
      try {
        units.add(validUnitName(unit));
      } catch {
        // not a name systemctl is given
      }
    }
  }
  return [...units].sort();
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/**
 * Kills every process of the account. First from inside the account itself:
 * `kill -KILL -1` run as that uid reaches, in one pass under the kernel's
 * task-list lock, every process whose real or saved uid it is, so a process
 * that keeps forking cannot slip past. Then a sweep of /proc catches what
 * that rule does not (a process holding the uid only as effective or fs uid).
 * Never SIGSTOP first: su and runuser stop themselves when their child
 * stops, and would be left stopped for good.
 */
async function endProcessesOf(ctx: ExecutionContext, uid: number, gid: number, subordinate: readonly UidRange[]): Promise<number[]> {
  const ended = new Set(processesOf(uid, subordinate));
  // It exits non-zero when nothing was left to signal; the sweep and the verification decide.
  await ctx.runner.run('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', 'kill', '-KILL', '-1']);
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const pids = processesOf(uid, subordinate);
    if (pids.length === 0) return [...ended].sort((a, b) => a - b);
    for (const pid of pids) {
      signal(pid, 'SIGKILL');
      ended.add(pid);
    }
    await new Promise((resolve) => setTimeout(resolve, 10 * (round + 1)));
  }
  const left = processesOf(uid, subordinate);
  if (left.length) throw new ExecutionError(`processes of uid ${uid} are still running after ${KILL_ROUNDS} rounds: ${left.join(', ')}`);
  return [...ended].sort((a, b) => a - b);
}

/** Whether systemd is the running init (the check sd_booted() makes). */
const systemdRunning = (): boolean => {
  try {
    readdirSync('/run/systemd/system');
    return true;
  } catch {
    return false;
  }
};

export const containUser: Executor<'contain_user'> = async (ctx) => {
  const name = userName(ctx);
  // By name first, from the local account database, so root and the agent's own account are refused before any command runs.
  const guards = guardsFor(ctx);
  const guarded = guards.user(name, null);
  if (guarded) throw new ExecutionError(guarded);
  const { uid, gid } = await accountOf(ctx, name);
  refuseProtected(ctx, guards, name, uid);
  const before = await shadowOf(ctx, name);
  const snapshot: ContainUserSnapshot = {
    name, uid,
    wasLocked: before.password.startsWith('!'),
    passwordEmpty: before.password === '',
    passwordFieldSha256: fingerprint(before.password),
    expiry: before.expiry,
    endedPids: [],
    subordinateUids: subordinateUids(name, uid),
    stoppedUnits: [],
  };
  const subordinate = snapshot.subordinateUids!;

  const notes: string[] = [];
  try {
    // The account first, so nothing that is killed next can log back in.
    if (!snapshot.wasLocked) await mustRun(ctx.runner, 'usermod', ['-L', '--', name]);
    await mustRun(ctx.runner, 'chage', ['-E', EXPIRED_DAY, '--', name]);
    if (systemdRunning()) {
      // Services that run as it would start its processes again after they are killed.
      for (const unit of systemServicesOf(processesOf(uid, subordinate))) {
        await mustRun(ctx.runner, 'systemctl', ['stop', '--', unit]);
        snapshot.stoppedUnits!.push(unit);
      }
      const result = await ctx.runner.run('loginctl', ['terminate-user', name]);
      // No session at all is not an error: the process sweep below is what guarantees the effect.
      if (result.code !== 0 && !/not logged in|no user/i.test(result.stderr)) notes.push(`logind did not close the sessions (${result.stderr.trim()})`);
    }
    snapshot.endedPids = await endProcessesOf(ctx, uid, gid, subordinate);

    const after = await shadowOf(ctx, name);
    if (!after.password.startsWith('!')) throw new ExecutionError(`the password of ${name} is not locked after usermod -L`);
    if (after.expiry !== EXPIRED_DAY) throw new ExecutionError(`the account ${name} is not expired after chage (expiry field ${JSON.stringify(after.expiry)})`);
    const left = processesOf(uid, subordinate);
    if (left.length) throw new ExecutionError(`processes of ${name} are still running: ${left.join(', ')}`);
  } catch (error) {
    // Nothing is undone (unlocking a compromised account is worse), but a failed action keeps no
    // snapshot, so the prior state is handed to the analyst in the error instead.
    const prior = `password ${snapshot.wasLocked ? 'locked' : 'unlocked'}, expiry ${snapshot.expiry === '' ? 'never' : `day ${snapshot.expiry}`}${snapshot.stoppedUnits!.length ? `, services ${snapshot.stoppedUnits!.join(', ')} running` : ''}`;
    throw new ExecutionError(`${(error as Error).message}. Whatever was applied stays; before containment ${name} had: ${prior}`, { cause: error });
  }

  const parts = [
    `Contained ${name} (uid ${uid}): password ${snapshot.wasLocked ? 'was already locked' : 'locked'}, account expired`,
    ...(snapshot.stoppedUnits!.length ? [`stopped the services running as it: ${snapshot.stoppedUnits!.join(', ')}`] : []),
    snapshot.endedPids.length ? `ended processes ${snapshot.endedPids.join(', ')}` : 'no process was running',
    ...(subordinate.length ? [`its rootless containers' uids (${subordinate.map((r) => `${r.start}-${r.start + r.count - 1}`).join(', ')}) included`] : []),
    ...notes,
  ];
  return { output: parts.join('; '), snapshot };
};

function isSnapshot(value: unknown): value is ContainUserSnapshot {
  const s = value as Partial<ContainUserSnapshot> | undefined;
  return typeof s?.name === 'string' && typeof s.uid === 'number' && typeof s.wasLocked === 'boolean' && typeof s.passwordEmpty === 'boolean'
    && typeof s.passwordFieldSha256 === 'string' && typeof s.expiry === 'string';
}

/** Puts the lock state and the expiry back exactly as contain_user found them, nothing more. */
export const releaseUser: Executor = async (ctx) => {
  const snapshot = ctx.priorSnapshot;
  if (!isSnapshot(snapshot)) throw new ExecutionError('this agent holds no containment record for the original action');
  const { name } = snapshot;
  if (!USER_NAME.test(name)) throw new ExecutionError(`the containment record names an invalid user: ${JSON.stringify(name)}`);
  if (ctx.command.entity.name !== name) throw new ExecutionError(`the containment record is for ${name}, not ${ctx.command.entity.name}`);
  const { uid } = await accountOf(ctx, name);
  if (uid !== snapshot.uid) throw new ExecutionError(`${name} now has uid ${uid}, not ${snapshot.uid}: it is not the contained account, left alone`);
  if (!/^(\d+)?$/.test(snapshot.expiry)) throw new ExecutionError(`the recorded expiry ${JSON.stringify(snapshot.expiry)} is not a day number`);

  await mustRun(ctx.runner, 'chage', ['-E', snapshot.expiry === '' ? '-1' : snapshot.expiry, '--', name]);
  const current = await shadowOf(ctx, name);
  const locked = current.password.startsWith('!');
  if (snapshot.wasLocked && !locked) {
    await mustRun(ctx.runner, 'usermod', ['-L', '--', name]);
  } else if (!snapshot.wasLocked && locked) {
    // usermod -U refuses to leave an empty field (and still exits 0), so an account that had no password gets its empty field back explicitly.
    if (snapshot.passwordEmpty && current.password === '!') await mustRun(ctx.runner, 'usermod', ['-p', '', '--', name]);
    else await mustRun(ctx.runner, 'usermod', ['-U', '--', name]);
  }

  const after = await shadowOf(ctx, name);
  if (after.password.startsWith('!') !== snapshot.wasLocked) throw new ExecutionError(`the password of ${name} is ${snapshot.wasLocked ? 'unlocked' : 'still locked'}; it was ${snapshot.wasLocked ? 'locked' : 'unlocked'} before containment`);
  if (after.expiry !== snapshot.expiry) throw new ExecutionError(`the expiry of ${name} is ${JSON.stringify(after.expiry)}, not ${JSON.stringify(snapshot.expiry)} as before containment`);
  const samePassword = fingerprint(after.password) === snapshot.passwordFieldSha256;
  const { started, notStarted } = await startAgain(ctx, snapshot.stoppedUnits ?? []);

  const parts = [
    `Released ${name}: password ${snapshot.wasLocked ? 'stays locked as it was before' : 'unlocked'}, expiry ${snapshot.expiry === '' ? 'back to never' : `back to day ${snapshot.expiry}`}`,
    ...(samePassword ? [] : ['the password was changed while the account was contained; the new one is kept']),
    ...(snapshot.passwordEmpty && !snapshot.wasLocked ? ['the account has an empty password again, as before'] : []),
    ...(started.length ? [`started again the services that ran as it: ${started.join(', ')}`] : []),
    ...notStarted,
  ];
  return { output: parts.join('; ') };
};

/**
 * Starts the services containment stopped. The account is released whatever
 * happens here: a service that does not start is named with the reason.
 */
async function startAgain(ctx: ExecutionContext, units: readonly string[]): Promise<{ started: string[]; notStarted: string[] }> {
  const started: string[] = [];
  const notStarted: string[] = [];
  for (const recorded of units) {
    let unit: string;
    try {
      unit = validUnitName(recorded);
    } catch {
      notStarted.push(`the record names a service that is not one: ${JSON.stringify(recorded)}`);
      continue;
    }
    const result = await ctx.runner.run('systemctl', ['start', '--', unit]);
    if (result.code === 0) started.push(unit);
    else notStarted.push(`${unit} did not start again (${result.stderr.trim() || `exit ${result.code}`}): start it by hand`);
  }
  return { started, notStarted };
}
