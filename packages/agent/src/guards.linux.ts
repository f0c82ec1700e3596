import { type Dirent, readFileSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import type { ExecutionContext } from './executors/executor.ts';

/**
 * Every target the agent refuses to act on, in one place. Targets come partly
 * from attackers (an alert's file path, unit, module or user name becomes an
 * action's entity), and the agent runs as root, so an action must never be a
 * way to lock the device, blind it, cut it off the network or take it away
 * from Quell.
 *
 * Two tiers:
 * - the agent itself (its files, program, interpreter, unit and account):
 *   never, whatever the parameters say. Acting on it would lose the device to
 *   Quell; offboarding is how the agent is removed.
 * - the system (account and auth databases, the loader and every library in
 *   the agent's own process, shells and init, critical units, the kernel
 *   modules the agent and the system need, root): refused unless a Global
 *   Administrator set `parameters.overrideGuard: true` on the action (the
 *   server lets nobody else set it).
 *
 * Files are compared by device and inode, never by path, so a hard link or a
 * bind mount of a guarded file, or a path through a linked directory, is
 * caught. Each command gets fresh guards: what they read (a few dozen stats,
 * a few small /proc and /sys files) is read at its first check and kept for
 * that command only, so a check never answers from a stale system.
 */
export interface Guards {
  /** Why this regular file must not be quarantined, removed or overwritten, or null. `id` is what fstat gave for the file opened without following links. */
  file(path: string, id: { dev: number; ino: number }): string | null;
  /** systemd unit names (services, sockets, timers). */
  unit(unit: string): string | null;
  /** Kernel module names (kernel spelling, underscores). */
  module(name: string): string | null;
  /** contain_user targets; `uid` is null while the account has not been looked up yet. */
  user(name: string, uid: number | null): string | null;
}

/** Where the guards read the system from: the real one by default, temporary folders in tests. */
export interface GuardFacts {
  /** The file system root the system's fixed files (/etc/passwd, /bin/sh, the shells /etc/shells lists…) are read under. */
  root: string;
  /** The agent's memory map (/proc/self/maps): every file mapped into its process. */
  procSelfMaps: string;
  /** The agent's control group (/proc/self/cgroup): the unit it runs in. */
  procSelfCgroup: string;
  /** The loaded modules and what uses each (/proc/modules). */
  procModules: string;
  /** The mounted file systems (/proc/mounts). */
  procMounts: string;
  /** The running init's binary (/proc/1/exe). */
  procInitExe: string;
  /** sysfs (/sys): the drivers of network interfaces and block devices. */
  sys: string;
  /** The agent's own directory; the command's `agentDir` when absent. */
  agentDir?: string;
  /** The agent's script or bundle (`process.argv[1]`), or null when there is none. */
  agentScript: string | null;
  /** The interpreter running the agent (`process.execPath`). */
  agentInterpreter: string;
  /** The uid the agent runs as, or null where there are no uids. */
  agentUid: number | null;
}

/** The real system, as the running agent sees it. */
export function systemGuardFacts(): GuardFacts {
  return {
    root: '/',
    procSelfMaps: '/proc/self/maps',
    procSelfCgroup: '/proc/self/cgroup',
    procModules: '/proc/modules',
    procMounts: '/proc/mounts',
    procInitExe: '/proc/1/exe',
    sys: '/sys',
    agentScript: process.argv[1] ?? null,
    agentInterpreter: process.execPath,
    agentUid: process.getuid?.() ?? null,
  };
}

/** The agent's own unit, as packages/agent/quell-agent.service installs it. */
export const AGENT_UNIT = 'quell-agent.service';

const OVERRIDE = 'A Global Administrator can override with parameters.overrideGuard';
const NEVER = 'This is never done, not even with parameters.overrideGuard; to remove the agent, offboard the device (quell device offboard)';

interface Rule { what: string; harm: string }

/**
 * Files of the system tier, under `root`. A directory guards every file
 * inside it. Links are followed (/bin/sh → dash), so the file itself is what
 * is guarded, under whatever name it is reached.
 */
export const SYSTEM_FILES: ReadonlyArray<Rule & { path: string }> = [
  { path: '/etc/passwd', what: 'the account database', harm: 'would lock everyone out' },
  { path: '/etc/shadow', what: 'the password database', harm: 'would lock everyone out' },
  { path: '/etc/group', what: 'the group database', harm: 'would break group permissions, sudo\'s included' },
  { path: '/etc/gshadow', what: 'the group password database', harm: 'would break group administration' },
  { path: '/etc/sudoers', what: 'sudo\'s rules', harm: 'would take administration away from every administrator' },
  { path: '/etc/sudoers.d', what: 'sudo\'s rules', harm: 'would take administration away from administrators' },
  { path: '/etc/pam.d', what: 'PAM\'s configuration, which every login and sudo goes through', harm: 'could lock everyone out or let anyone in' },
  { path: '/etc/security', what: 'the configuration of PAM\'s modules', harm: 'could lock everyone out or let anyone in' },
  { path: '/etc/login.defs', what: 'the login and account defaults', harm: 'would change how accounts log in and are created' },
  { path: '/etc/nsswitch.conf', what: 'the name service switch', harm: 'would break every look-up of users, groups and host names' },
  { path: '/etc/ld.so.cache', what: 'the dynamic loader\'s cache', harm: 'would break programs that find their libraries through it' },
  { path: '/bin/sh', what: 'the system shell', harm: 'would break every script and many services' },
  { path: '/sbin/init', what: 'the init system', harm: 'would leave the device unable to boot' },
  { path: '/lib/systemd/systemd', what: 'systemd, the init system', harm: 'would leave the device unable to boot' },
  { path: '/usr/lib/systemd/systemd', what: 'systemd, the init system', harm: 'would leave the device unable to boot' },
];
const MAPPED: Rule = { what: 'mapped into the running agent: the loader, libc or another library programs need', harm: 'would break the agent and every program that uses it' };
const SHELL: Rule = { what: 'a login shell listed in /etc/shells', harm: 'would lock out every account that logs in with it' };
const RUNNING_INIT: Rule = { what: 'the running init system', harm: 'would leave the device unable to boot' };

/** Units of the system tier, by exact name (services, their sockets, and the timers that keep the system patched). */
export const SYSTEM_UNIT_GROUPS: ReadonlyArray<Rule & { units: readonly string[] }> = [
  { units: ['-.slice', 'init.scope'], what: 'init, the root of every unit', harm: 'would take the whole system down' },
  {
    units: ['systemd-journald.service', 'systemd-journald.socket', 'systemd-journald-dev-log.socket', 'systemd-journald-audit.socket'],
    what: 'the system journal', harm: 'would blind the device (no logs) and stall the services that write to it',
  },
  { units: ['dbus.service', 'dbus-broker.service', 'dbus.socket'], what: 'the system message bus', harm: 'would break logind, systemctl and most system services' },
  { units: ['ssh.service', 'sshd.service', 'ssh.socket', 'sshd.socket'], what: 'remote administration (SSH)', harm: 'would cut administrators off this device' },
  {
    units: ['networking.service', 'systemd-networkd.service', 'systemd-networkd.socket', 'NetworkManager.service'],
    what: 'network configuration', harm: 'could cut this device off the network and from Quell',
  },
  { units: ['systemd-resolved.service'], what: 'name resolution', harm: 'would stop host names from resolving, the Quell server\'s included' },
  { units: ['systemd-logind.service'], what: 'the login manager', harm: 'would break logins and sessions' },
  { units: ['systemd-udevd.service', 'systemd-udevd-control.socket', 'systemd-udevd-kernel.socket'], what: 'the device manager', harm: 'would stop devices from being set up' },
  {
    units: ['apt-daily.timer', 'apt-daily-upgrade.timer', 'dnf-automatic.timer', 'dnf-automatic-install.timer'],
    what: 'automatic security updates', harm: 'would silently stop this device from being patched',
  },
  { units: ['logrotate.timer'], what: 'log rotation', harm: 'would let the logs fill the disk' },
];
const SYSTEM_UNITS: ReadonlyMap<string, Rule> = new Map(SYSTEM_UNIT_GROUPS.flatMap((group) => group.units.map((unit) => [unit, group] as const)));

const NFTABLES: Rule = { what: 'nftables, which isolation and containment rely on', harm: 'would leave isolation and containment unenforceable' };
/** Module families of the system tier: the packet filter isolation and containment are built on. */
export const SYSTEM_MODULE_PATTERNS: ReadonlyArray<{ pattern: RegExp; rule: Rule }> = [
  { pattern: /^(nf_tables|nft_.+|nf_conntrack.*|nf_defrag_.+|nf_reject_.+|nf_nat.*|nf_socket_.+|nf_tproxy_.+|nf_dup_.+|nf_log_.+|nf_flow_table.*|nfnetlink.*|x_tables|ip_tables|ip6_tables)$/, rule: NFTABLES },
];

/** Virtual network interfaces (no device of their own) and the module each type is made by. */
const VIRTUAL_INTERFACE_MODULES: Readonly<Record<string, string>> = {
  bridge: 'bridge', bond: 'bonding', vlan: '8021q', wireguard: 'wireguard', vxlan: 'vxlan', macvlan: 'macvlan', ipvlan: 'ipvlan', geneve: 'geneve',
};
/** File system types whose module has another name, or that another module also serves. */
const FILE_SYSTEM_MODULES: Readonly<Record<string, string[]>> = {
  ext2: ['ext2', 'ext4'], ext3: ['ext3', 'ext4'], nfs4: ['nfsv4', 'nfs'], nfs: ['nfs', 'nfsv3'], fuseblk: ['fuse'], smb3: ['cifs'], iso9660: ['isofs'],
};

type Id = { dev: number; ino: number };
/** A file's identity as the keys of agentFileIds: its device and inode. */
export const idKey = (id: Id): string => `${id.dev}:${id.ino}`;

function statId(path: string): string | null {
  try {
    return idKey(statSync(path));
  } catch {
    return null;
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function listDir(path: string): Dirent[] {
  try {
    return readdirSync(path, { withFileTypes: true });
  } catch {
    return [];
  }
}

function realpath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

/** `path` itself, or every file under it when it is a directory (links are left for stat to follow). */
function filesUnder(path: string, depth = 4): string[] {
  const entries = listDir(path);
  if (entries.length === 0) return [path];
  return entries.flatMap((entry) => (entry.isDirectory() && depth > 0 ? filesUnder(join(path, entry.name), depth - 1) : [join(path, entry.name)]));
}

/** Every regular file a directory holds itself, not following links. */
function ownFilesUnder(dir: string): string[] {
  return listDir(dir).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return ownFilesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}

const isInside = (dir: string, path: string): boolean => path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/** A unit name as systemctl reads it: no suffix means a service. */
const unitName = (unit: string): string => (/\.(service|socket|timer|path|target|mount|automount|swap|slice|scope|device)$/.test(unit) ? unit : `${unit}.service`);

/** The unit a process runs in, from its /proc/PID/cgroup (`0::/system.slice/quell-agent.service`); null outside any. */
export function cgroupUnit(cgroup: string): string | null {
  for (const line of cgroup.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    const [, hierarchy, controllers, path] = match;
    // The unified hierarchy (0::) and systemd's own (name=systemd) are the ones named after units.
    if (!(hierarchy === '0' && controllers === '') && controllers !== 'name=systemd') continue;
    const unit = path!.split('/').filter((part) => /\.(service|scope)$/.test(part)).at(-1);
    if (unit) return unit;
  }
  return null;
}

/**
 * The agent's own files by device and inode (idKey), each with what it is
 * and its real path: every regular file in its directory, its script and
 * its interpreter. The guards refuse to act on these; evidence names them
 * Quell's.
 */
export function agentFileIds(agentDir: string, facts: Pick<GuardFacts, 'agentScript' | 'agentInterpreter'>): Map<string, { what: string; path: string }> {
  const files = new Map<string, { what: string; path: string }>();
  const add = (path: string | null, what: string): void => {
    const id = path === null ? null : statId(path);
    if (path !== null && id !== null && !files.has(id)) files.set(id, { what, path: realpath(path) ?? path });
  };
  for (const path of ownFilesUnder(agentDir)) add(path, 'file');
  add(facts.agentScript, 'program');
  add(facts.agentInterpreter, 'interpreter');
  return files;
}

/** Lazily computed once per Guards instance. */
function once<T>(compute: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: compute() }).v;
}

/** The guards for one command: `parameters.overrideGuard === true` lifts the system tier, never the agent's own. */
export function guardsFor(ctx: ExecutionContext, facts: GuardFacts = systemGuardFacts()): Guards {
  const override = 'overrideGuard' in ctx.command.parameters && ctx.command.parameters.overrideGuard === true;
  const agentDir = facts.agentDir ?? ctx.agentDir;
  const under = (path: string): string => join(facts.root, path);
  /** A path under `root` as the device names it. */
  const named = (path: string): string => join('/', relative(facts.root, path));
  const agent = (subject: string, what: string, verb: string): string => `${subject} is guarded (the Quell agent's own ${what}): ${verb} would lose this device to Quell. ${NEVER}`;
  const system = (subject: string, what: string, consequence: string): string | null => (override ? null : `${subject} is guarded (${what}): ${consequence}. ${OVERRIDE}`);
  /** How a file is named in a reason: by the path asked about, and by its guarded name when that differs (a hard link, a linked directory). */
  const subjectOf = (path: string, guarded: string): string => (path === guarded ? path : `${path} (the same file as ${guarded})`);

  const agentFiles = once(() => agentFileIds(agentDir, facts));

  /** The system's files by device and inode, each with every path it was guarded under, its name on the device, and why. */
  const systemFiles = once(() => {
    const files = new Map<string, Array<Rule & { path: string; name: string }>>();
    const add = (path: string, rule: Rule, name: string): void => {
      const id = statId(path);
      if (id) files.set(id, [...(files.get(id) ?? []), { ...rule, path, name }]);
    };
    for (const rule of SYSTEM_FILES) {
      for (const path of filesUnder(under(rule.path))) add(path, rule, named(path));
    }
    for (const line of (readText(under('/etc/shells')) ?? '').split('\n')) {
      const shell = line.trim();
      if (shell.startsWith('/')) add(under(shell), SHELL, shell);
    }
    const mapped = new Set<string>();
    for (const line of (readText(facts.procSelfMaps) ?? '').split('\n')) {
      // address perms offset dev inode pathname: a pathname may hold spaces, and a file deleted since says so.
      const path = /^\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+(\/.*)$/.exec(line)?.[1];
      if (path && !path.endsWith(' (deleted)')) mapped.add(path);
    }
    for (const path of mapped) add(path, MAPPED, path);
    add(facts.procInitExe, RUNNING_INIT, realpath(facts.procInitExe) ?? facts.procInitExe);
    return files;
  });

  const agentUnits = once(() => {
    const own = cgroupUnit(readText(facts.procSelfCgroup) ?? '');
    return new Set(own ? [AGENT_UNIT, own] : [AGENT_UNIT]);
  });

  /** The system tier's modules: the fixed families, the drivers and file systems in use, and everything those need. */
  const systemModules = once(() => {
    const modules = new Map<string, Rule>();
    const add = (module: string, rule: Rule): void => {
      const name = module.replaceAll('-', '_');
      if (!modules.has(name)) modules.set(name, rule);
    };
    const sysDevices = realpath(join(facts.sys, 'devices'));
    /** The driver module of a device and of every device above it: the controller and buses it hangs off. */
    const driversOf = (device: string, rule: Rule): void => {
      for (let dir = realpath(device); dir && sysDevices && dir !== sysDevices && isInside(sysDevices, dir); dir = dirname(dir)) {
        try {
          add(basename(readlinkSync(join(dir, 'driver', 'module'))), rule);
        } catch {
          // no driver bound here, or one built into the kernel
        }
      }
    };
    for (const { name } of listDir(join(facts.sys, 'class', 'net'))) {
      if (name === 'lo') continue;
      const rule = { what: `the driver of network interface ${name}`, harm: 'could cut this device off the network and from Quell' };
      driversOf(join(facts.sys, 'class', 'net', name, 'device'), rule);
      const type = /^DEVTYPE=(.*)$/m.exec(readText(join(facts.sys, 'class', 'net', name, 'uevent')) ?? '')?.[1];
      const virtual = type === undefined ? undefined : VIRTUAL_INTERFACE_MODULES[type];
      if (virtual) add(virtual, rule);
    }
    for (const { name } of listDir(join(facts.sys, 'block'))) {
      driversOf(join(facts.sys, 'block', name, 'device'), { what: `the driver of block device ${name}`, harm: 'could make this device\'s disks unreadable' });
    }
    for (const line of (readText(facts.procMounts) ?? '').split('\n')) {
      const type = line.split(' ')[2];
      if (!type) continue;
      const rule = { what: `the file system ${type}, mounted on this device`, harm: 'could leave its file systems unreadable' };
      const base = type.startsWith('fuse.') ? 'fuse' : type;
      for (const module of FILE_SYSTEM_MODULES[base] ?? [base]) add(module, rule);
    }
    const guarded = (name: string): Rule | undefined => modules.get(name) ?? SYSTEM_MODULE_PATTERNS.find(({ pattern }) => pattern.test(name))?.rule;
    // What a guarded module needs is guarded too. /proc/modules names, on each module's line, the modules that use it.
    const users = (readText(facts.procModules) ?? '').split('\n').map((line) => line.split(' ')).filter((fields) => fields.length >= 4)
      .map(([name, , , usedBy]) => ({ name: name!, usedBy: usedBy!.split(',').filter((user) => /^[A-Za-z0-9_]+$/.test(user)) }));
    for (let changed = true; changed;) {
      changed = false;
      for (const { name, usedBy } of users) {
        const user = guarded(name) ? undefined : usedBy.find((candidate) => guarded(candidate));
        if (user === undefined) continue;
        const rule = guarded(user)!;
        add(name, { what: `needed by ${user}: ${rule.what}`, harm: rule.harm });
        changed = true;
      }
    }
    return guarded;
  });

  /** Each local account's uid, so that a name is guarded before the executor looks it up. */
  const localUids = once(() => {
    const uids = new Map<string, number>();
    for (const line of (readText(under('/etc/passwd')) ?? '').split('\n')) {
      const [name, , uid] = line.split(':');
      if (name && uid !== undefined && /^\d+$/.test(uid) && !uids.has(name)) uids.set(name, Number(uid));
    }
    return uids;
  });

  return {
    file(path, id) {
      const key = idKey(id);
      const own = agentFiles().get(key);
      if (own) return agent(subjectOf(path, own.path), own.what, 'quarantining, removing or overwriting it');
      const dir = realpath(agentDir);
      const parent = realpath(dirname(path));
      if (dir && parent && isInside(dir, join(parent, basename(path)))) return agent(path, `file, in ${dir}`, 'quarantining, removing or overwriting it');
      const rules = systemFiles().get(key);
      const rule = rules?.find((candidate) => candidate.path === path) ?? rules?.[0];
      return rule ? system(subjectOf(path, rule.name), rule.what, `quarantining, removing or overwriting it ${rule.harm}`) : null;
    },

    unit(raw) {
      const unit = unitName(raw);
      if (agentUnits().has(unit)) return agent(unit, 'unit', 'stopping or removing it');
      const rule = SYSTEM_UNITS.get(unit);
      return rule ? system(unit, rule.what, `stopping or removing it ${rule.harm}`) : null;
    },

    module(raw) {
      const module = raw.replaceAll('-', '_');
      const rule = systemModules()(module);
      return rule ? system(module, rule.what, `disabling it ${rule.harm}`) : null;
    },

    user(name, uid) {
      const uids = new Set<number>();
      if (uid !== null) uids.add(uid);
      const local = localUids().get(name);
      if (local !== undefined) uids.add(local);
      if (name === 'root') uids.add(0);
      if (facts.agentUid !== null && uids.has(facts.agentUid)) return agent(`${name} (uid ${facts.agentUid})`, 'account, the one it runs as', 'containing it');
      if (uids.has(0)) return system(`${name} (uid 0)`, 'a root account', 'containing it would kill every root process, init included, and could leave the device unrecoverable');
      return null;
    },
  };
}
