import { linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driverExecutors } from './executors/driver.linux.ts';
import { containUser } from './executors/contain-user.linux.ts';
import { RecordingRunner, executionContext, failed, ok } from './executors/test/recording-runner.ts';
import { removeScheduledTask } from './executors/scheduled-task.linux.ts';
import { stopService } from './executors/service.linux.ts';
import { type GuardFacts, type Guards, SYSTEM_FILES, SYSTEM_UNIT_GROUPS, cgroupUnit, guardsFor } from './guards.linux.ts';

const OVERRIDABLE = /A Global Administrator can override with parameters\.overrideGuard$/;
const NEVER = /would lose this device to Quell\. This is never done, not even with parameters\.overrideGuard; to remove the agent, offboard the device/;
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A whole system in a temporary folder: /etc and the binaries under `root`,
 * the agent's /proc files (memory map, cgroup, modules, mounts) and a /sys
 * tree with a PCI network card, a USB network adapter behind its controller,
 * a bridge, a SATA disk and an NVMe disk.
 */
let dir: string;
let root: string;
let agentDir: string;
let facts: GuardFacts;

function file(path: string, content = `${path}\n`): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  return path;
}
function link(path: string, target: string): string {
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(target, path);
  return path;
}
/** A device under /sys/devices bound to a driver that is the module `module`, or built in (null). */
function device(path: string, driver: string, module: string | null): string {
  const full = join(dir, 'sys/devices', path);
  mkdirSync(full, { recursive: true });
  const driverDir = join(dir, 'sys/bus/any/drivers', driver);
  mkdirSync(driverDir, { recursive: true });
  if (module !== null && !lstatSync(join(driverDir, 'module'), { throwIfNoEntry: false })) {
    mkdirSync(join(dir, 'sys/module', module), { recursive: true });
    symlinkSync(join(dir, 'sys/module', module), join(driverDir, 'module'));
  }
  symlinkSync(driverDir, join(full, 'driver'));
  return full;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'quell-guards-'));
  root = join(dir, 'root');
  for (const path of ['etc/shadow', 'etc/group', 'etc/gshadow', 'etc/sudoers', 'etc/sudoers.d/admins', 'etc/pam.d/sshd', 'etc/pam.d/common-auth',
    'etc/security/limits.conf', 'etc/security/limits.d/90-nproc.conf', 'etc/login.defs', 'etc/ld.so.cache', 'bin/dash', 'bin/bash', 'usr/bin/zsh',
    'lib/systemd/systemd', 'usr/lib/systemd/systemd', 'usr/share/nss/nsswitch.conf', 'opt/init/tini']) file(join(root, path));
  file(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nquell:x:4242:4242::/var/lib/quell-agent:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n');
  file(join(root, 'etc/shells'), '# /etc/shells: valid login shells\n/bin/bash\n/usr/bin/zsh\n');
  link(join(root, 'bin/sh'), 'dash');
  link(join(root, 'sbin/init'), '../lib/systemd/systemd');
  link(join(root, 'etc/nsswitch.conf'), '../usr/share/nss/nsswitch.conf');
  link(join(dir, 'proc/1/exe'), join(root, 'opt/init/tini'));

  // The agent's process: node, the loader, libc, libstdc++ (a path with a space), its bundle elsewhere.
  const libs = ['usr/bin/node', 'lib/x86_64-linux-gnu/libc.so.6', 'lib64/ld-linux-x86-64.so.2', 'usr/lib/x86_64-linux-gnu/libstdc++.so.6', 'opt/odd libs/libz.so.1'].map((path) => file(join(root, path)));
  file(join(dir, 'proc/self/maps'), [
    `00400000-04e3d000 r-xp 00000000 fd:01 1837092                    ${libs[0]}`,
    '05f4e000-06263000 rw-p 00000000 00:00 0                          [heap]',
    `7f0c8a200000-7f0c8a228000 r--p 00000000 fd:01 1835270            ${libs[1]}`,
    `7f0c8a4e0000-7f0c8a4e2000 r--p 00000000 fd:01 1835003            ${libs[2]}`,
    `7f0c8a600000-7f0c8a69c000 r--p 00000000 fd:01 1836113            ${libs[3]}`,
    `7f0c8a700000-7f0c8a710000 r--p 00000000 fd:01 1836114            ${libs[4]}`,
    `7f0c8a800000-7f0c8a810000 r--p 00000000 fd:01 1836115            ${join(root, 'tmp/gone.so')} (deleted)`,
    '7ffd2a3f1000-7ffd2a3f3000 r-xp 00000000 00:00 0                  [vdso]',
    '',
  ].join('\n'));
  file(join(dir, 'proc/self/cgroup'), '0::/system.slice/endpoint-guardian.service\n');
  file(join(dir, 'proc/mounts'), [
    '/dev/sda1 / ext4 rw,relatime 0 0', '/dev/nvme0n1p1 /boot/efi vfat rw 0 0', 'server:/export /mnt/share nfs4 rw 0 0',
    'alice@host:/ /home/alice/remote fuse.sshfs rw 0 0', 'tmpfs /run tmpfs rw 0 0', '',
  ].join('\n'));
  file(join(dir, 'proc/modules'), [
    'nf_tables 356352 3 nft_ct,nft_chain_nat, Live 0x0000000000000000',
    'nft_ct 24576 1 - Live 0x0000000000000000',
    'libcrc32c 12288 2 nf_tables,btrfs, Live 0x0000000000000000',
    'e1000e 339968 0 - Live 0x0000000000000000',
    'ptp 45056 1 e1000e, Live 0x0000000000000000',
    'pps_core 28672 1 ptp, Live 0x0000000000000000',
    'ext4 1032192 2 - Live 0x0000000000000000',
    'jbd2 196608 1 ext4, Live 0x0000000000000000',
    'mbcache 16384 1 ext4, Live 0x0000000000000000',
    'vfat 24576 1 - Live 0x0000000000000000',
    'fat 94208 1 vfat, Live 0x0000000000000000',
    'btusb 77824 0 - Live 0x0000000000000000',
    'bluetooth 1032192 2 btusb, Live 0x0000000000000000',
    'usb_storage 86016 0 - Live 0x0000000000000000',
    'evil_rootkit 16384 0 [permanent], Live 0x0000000000000000',
    '',
  ].join('\n'));

  // /sys: eth0 on a PCI card, a USB adapter behind its controller, a bridge, lo; a SATA disk and an NVMe disk.
  const pciNic = device('pci0000:00/0000:00:1f.6', 'e1000e', 'e1000e');
  device('pci0000:00/0000:00:14.0', 'xhci_hcd', 'xhci_pci');
  device('pci0000:00/0000:00:14.0/usb2', 'usb', null);
  const usbNic = device('pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0', 'r8152', 'r8152');
  link(join(dir, 'sys/class/net/eth0/device'), pciNic);
  link(join(dir, 'sys/class/net/enx00e04c680001/device'), usbNic);
  file(join(dir, 'sys/class/net/br0/uevent'), 'DEVTYPE=bridge\nINTERFACE=br0\nIFINDEX=5\n');
  file(join(dir, 'sys/class/net/lo/uevent'), 'INTERFACE=lo\nIFINDEX=1\n');
  device('pci0000:00/0000:00:17.0', 'ahci', 'ahci');
  const disk = device('pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0', 'sd', 'sd_mod');
  link(join(dir, 'sys/block/sda/device'), disk);
  device('pci0000:00/0000:00:1d.0', 'nvme', 'nvme');
  mkdirSync(join(dir, 'sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0'), { recursive: true });
  link(join(dir, 'sys/block/nvme0n1/device'), join(dir, 'sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0'));

  // The agent: its directory, its bundle (reached through a link) and its interpreter (also in the memory map).
  agentDir = join(dir, 'var/lib/quell-agent');
  for (const path of ['identity.json', 'journal.jsonl', 'vault/0190aaaa-0000-7000-8000-000000000001', 'desired-state.json', 'watermark']) file(join(agentDir, path));
  file(join(dir, 'opt/quell/quell-agent.mjs'));
  link(join(dir, 'usr/local/bin/quell-agent'), join(dir, 'opt/quell/quell-agent.mjs'));

  facts = {
    root, agentDir, procSelfMaps: join(dir, 'proc/self/maps'), procSelfCgroup: join(dir, 'proc/self/cgroup'), procModules: join(dir, 'proc/modules'),
    procMounts: join(dir, 'proc/mounts'), procInitExe: join(dir, 'proc/1/exe'), sys: join(dir, 'sys'),
    agentScript: join(dir, 'usr/local/bin/quell-agent'), agentInterpreter: libs[0]!, agentUid: 4242,
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const guards = (options: { overrideGuard?: unknown; facts?: Partial<GuardFacts> } = {}): Guards => guardsFor(
  executionContext(new RecordingRunner(() => failed(1, 'no command may run here')), { type: 'quarantine_file', entity: { name: 'x' }, parameters: options.overrideGuard === undefined ? {} : { overrideGuard: options.overrideGuard as boolean } }, { agentDir }),
  { ...facts, ...options.facts },
);
const fileGuard = (path: string, options: Parameters<typeof guards>[0] = {}): string | null => guards(options).file(path, statSync(path));

/** One file per entry of SYSTEM_FILES (for a directory, files inside it), then the shells, the memory map and the running init; paths under `root`. */
const SYSTEM_CASES: Array<{ path: string; what: string }> = [
  ...SYSTEM_FILES.flatMap(({ path, what }) => ({
    '/etc/sudoers.d': ['etc/sudoers.d/admins'],
    '/etc/pam.d': ['etc/pam.d/sshd', 'etc/pam.d/common-auth'],
    '/etc/security': ['etc/security/limits.conf', 'etc/security/limits.d/90-nproc.conf'],
  }[path] ?? [path.slice(1)]).map((inside) => ({ path: inside, what }))),
  { path: 'bin/bash', what: 'a login shell listed in /etc/shells' },
  { path: 'usr/bin/zsh', what: 'a login shell listed in /etc/shells' },
  ...['lib/x86_64-linux-gnu/libc.so.6', 'lib64/ld-linux-x86-64.so.2', 'usr/lib/x86_64-linux-gnu/libstdc++.so.6', 'opt/odd libs/libz.so.1']
    .map((path) => ({ path, what: 'mapped into the running agent: the loader, libc or another library programs need' })),
  { path: 'opt/init/tini', what: 'the running init system' },
];

describe('guarded files: the system tier, by device and inode', () => {
  it.each(SYSTEM_CASES.map(({ path, what }) => [path, what]))('refuses /%s (%s) unless a Global Administrator overrides', (path, what) => {
    const reason = fileGuard(join(root, path));
    expect(reason).toMatch(new RegExp(`is guarded \\(${escape(what)}\\): quarantining, removing or overwriting it `));
    expect(reason).toMatch(OVERRIDABLE);
    expect(fileGuard(join(root, path), { overrideGuard: true })).toBeNull();
  });

  it('names the file as the device does, and says which guarded file it is', () => {
    expect(fileGuard(join(root, 'etc/passwd'))).toBe(`${join(root, 'etc/passwd')} (the same file as /etc/passwd) is guarded (the account database): quarantining, removing or overwriting it would lock everyone out. A Global Administrator can override with parameters.overrideGuard`);
    const real = guardsFor(executionContext(new RecordingRunner(() => ok()), { type: 'quarantine_file', entity: { name: '/etc/passwd' } }), { ...facts, root: '/' });
    expect(real.file('/etc/passwd', statSync('/etc/passwd'))).toBe('/etc/passwd is guarded (the account database): quarantining, removing or overwriting it would lock everyone out. A Global Administrator can override with parameters.overrideGuard');
  });

  it('catches a hard link of a guarded file, wherever it is', () => {
    const copy = join(dir, 'home/mallory/not-shadow');
    mkdirSync(dirname(copy), { recursive: true });
    linkSync(join(root, 'etc/shadow'), copy);
    expect(fileGuard(copy)).toBe(`${copy} (the same file as /etc/shadow) is guarded (the password database): quarantining, removing or overwriting it would lock everyone out. A Global Administrator can override with parameters.overrideGuard`);
  });

  it('follows links to the guarded file: /bin/sh → dash, a linked /etc/nsswitch.conf, /sbin/init → systemd', () => {
    expect(fileGuard(join(root, 'bin/dash'))).toMatch(/\(the same file as \/bin\/sh\) is guarded \(the system shell\)/);
    expect(fileGuard(join(root, 'usr/share/nss/nsswitch.conf'))).toMatch(/\(the same file as \/etc\/nsswitch\.conf\) is guarded \(the name service switch\)/);
    expect(fileGuard(join(root, 'lib/systemd/systemd'))).toMatch(/is guarded \((the init system|systemd, the init system)\)/);
  });

  it('catches a guarded file reached through a linked directory', () => {
    const etc = link(join(dir, 'tmp/innocent'), join(root, 'etc'));
    expect(fileGuard(join(etc, 'shadow'))).toMatch(/innocent\/shadow \(the same file as \/etc\/shadow\) is guarded \(the password database\)/);
  });

  it('a symbolic link to a guarded file is not the file: opened without following links, it is itself', () => {
    const planted = link(join(dir, 'tmp/passwd-link'), join(root, 'etc/passwd'));
    expect(guards().file(planted, lstatSync(planted))).toBeNull();
  });

  it('leaves ordinary files, a deleted mapping and pseudo mappings alone', () => {
    expect(fileGuard(file(join(dir, 'home/alice/Downloads/invoice.pdf.exe')))).toBeNull();
    expect(fileGuard(file(join(root, 'tmp/gone.so')))).toBeNull();
  });
});

describe('guarded files: the agent itself, never', () => {
  const agentFiles = ['identity.json', 'journal.jsonl', 'vault/0190aaaa-0000-7000-8000-000000000001', 'desired-state.json', 'watermark'];

  it.each(agentFiles)('refuses %s in the agent\'s directory, override or not', (name) => {
    const path = join(agentDir, name);
    for (const overrideGuard of [undefined, true]) {
      expect(fileGuard(path, { overrideGuard })).toBe(`${path} is guarded (the Quell agent's own file): quarantining, removing or overwriting it would lose this device to Quell. This is never done, not even with parameters.overrideGuard; to remove the agent, offboard the device (quell device offboard)`);
    }
  });

  it('refuses a hard link of its identity elsewhere, override or not', () => {
    const copy = join(dir, 'tmp/id-copy.json');
    linkSync(join(agentDir, 'identity.json'), copy);
    expect(fileGuard(copy, { overrideGuard: true })).toMatch(new RegExp(`^${escape(copy)} \\(the same file as ${escape(join(agentDir, 'identity.json'))}\\) is guarded \\(the Quell agent's own file\\): `));
  });

  it('refuses a file that appeared in its directory after the first check of the command', () => {
    const checks = guards({ overrideGuard: true });
    expect(checks.file(join(agentDir, 'identity.json'), statSync(join(agentDir, 'identity.json')))).toMatch(NEVER);
    const late = file(join(agentDir, 'journal.jsonl.tmp'));
    expect(checks.file(late, statSync(late))).toMatch(NEVER);
  });

  it('refuses its program (the script behind process.argv[1], links resolved) and its interpreter, even though the latter is also mapped', () => {
    const script = join(dir, 'opt/quell/quell-agent.mjs');
    expect(fileGuard(script, { overrideGuard: true })).toMatch(new RegExp(`^${escape(script)} is guarded \\(the Quell agent's own program\\): .*never done`));
    expect(fileGuard(facts.agentInterpreter, { overrideGuard: true })).toMatch(new RegExp(`^${escape(facts.agentInterpreter)} is guarded \\(the Quell agent's own interpreter\\): .*never done`));
  });
});

describe('guarded units', () => {
  const systemUnits = SYSTEM_UNIT_GROUPS.flatMap((group) => group.units.map((unit) => [unit, group.what] as const));

  it.each(systemUnits)('refuses %s (%s) unless a Global Administrator overrides', (unit, what) => {
    expect(guards().unit(unit)).toMatch(new RegExp(`^${escape(unit)} is guarded \\(${escape(what)}\\): stopping or removing it .*${OVERRIDABLE.source}`));
    expect(guards({ overrideGuard: true }).unit(unit)).toBeNull();
  });

  it('covers init, the journal and its sockets, the bus, SSH, networking, resolved, logind and udevd', () => {
    for (const unit of ['-.slice', 'init.scope', 'systemd-journald.service', 'systemd-journald.socket', 'systemd-journald-dev-log.socket', 'dbus.service', 'dbus-broker.service',
      'dbus.socket', 'ssh.service', 'sshd.service', 'ssh.socket', 'networking.service', 'systemd-networkd.service', 'NetworkManager.service', 'systemd-resolved.service',
      'systemd-logind.service', 'systemd-udevd.service']) expect(systemUnits.map(([name]) => name)).toContain(unit);
  });

  it.each(['quell-agent.service', 'quell-agent', 'endpoint-guardian.service'])('refuses the agent\'s own unit %s, override or not', (unit) => {
    for (const overrideGuard of [undefined, true]) {
      expect(guards({ overrideGuard }).unit(unit)).toMatch(new RegExp(`^${escape(unit.includes('.') ? unit : `${unit}.service`)} is guarded \\(the Quell agent's own unit\\): stopping or removing it ${NEVER.source}`));
    }
  });

  it('leaves other units alone, and the override only counts when it is the boolean true', () => {
    expect(guards().unit('evil.service')).toBeNull();
    expect(guards().unit('sshd@3-10.0.0.5:22-203.0.113.9:51234.service')).toBeNull();
    expect(guards({ overrideGuard: 'true' }).unit('sshd.service')).toMatch(OVERRIDABLE);
  });

  it('reads the agent\'s unit from either cgroup hierarchy', () => {
    expect(cgroupUnit('0::/system.slice/quell-agent.service\n')).toBe('quell-agent.service');
    expect(cgroupUnit('12:cpu,cpuacct:/\n1:name=systemd:/system.slice/edr.service\n0::/\n')).toBe('edr.service');
    expect(cgroupUnit('0::/user.slice/user-0.slice/session-4.scope\n')).toBe('session-4.scope');
    expect(cgroupUnit('0::/\n')).toBeNull();
    expect(cgroupUnit('')).toBeNull();
  });
});

describe('guarded kernel modules', () => {
  const cases: Array<[module: string, why: string]> = [
    ['nf_tables', 'nftables, which isolation and containment rely on'],
    ['nft_ct', 'nftables'], ['nft_chain_nat', 'nftables'], ['nf_conntrack', 'nftables'], ['nf_conntrack_ftp', 'nftables'], ['nf_defrag_ipv4', 'nftables'],
    ['nf_defrag_ipv6', 'nftables'], ['nf_reject_ipv4', 'nftables'], ['nf_nat', 'nftables'], ['nfnetlink', 'nftables'], ['nfnetlink_queue', 'nftables'], ['x_tables', 'nftables'],
    ['e1000e', 'the driver of network interface eth0'],
    ['r8152', 'the driver of network interface enx00e04c680001'],
    ['xhci_pci', 'the driver of network interface enx00e04c680001'],
    ['bridge', 'the driver of network interface br0'],
    ['sd_mod', 'the driver of block device sda'],
    ['ahci', 'the driver of block device sda'],
    ['nvme', 'the driver of block device nvme0n1'],
    ['ext4', 'the file system ext4, mounted on this device'],
    ['vfat', 'the file system vfat, mounted on this device'],
    ['nfsv4', 'the file system nfs4, mounted on this device'],
    ['fuse', 'the file system fuse.sshfs, mounted on this device'],
    ['libcrc32c', 'needed by nf_tables: nftables'],
    ['ptp', 'needed by e1000e: the driver of network interface eth0'],
    ['pps_core', 'needed by ptp: needed by e1000e'],
    ['jbd2', 'needed by ext4: the file system ext4'],
    ['fat', 'needed by vfat: the file system vfat'],
  ];

  it.each(cases)('refuses %s (%s) unless a Global Administrator overrides', (module, why) => {
    expect(guards().module(module)).toMatch(new RegExp(`^${module} is guarded \\(${escape(why)}.*\\): disabling it .*${OVERRIDABLE.source}`));
    expect(guards({ overrideGuard: true }).module(module)).toBeNull();
  });

  it('reads names in either spelling, as the kernel does', () => {
    expect(guards().module('nf-tables')).toMatch(/^nf_tables is guarded/);
    expect(guards().module('sd-mod')).toMatch(/^sd_mod is guarded/);
  });

  it.each(['evil_rootkit', 'bluetooth', 'btusb', 'usb_storage', 'usb'])('leaves %s alone: no interface, disk or mount needs it', (module) => {
    expect(guards().module(module)).toBeNull();
  });
});

describe('guarded users', () => {
  it('refuses root and every uid 0 account, by name before the look-up and by uid after, unless a Global Administrator overrides', () => {
    for (const [name, uid] of [['root', null], ['toor', null], ['root', 0], ['backdoor', 0]] as const) {
      expect(guards().user(name, uid)).toBe(`${name} (uid 0) is guarded (a root account): containing it would kill every root process, init included, and could leave the device unrecoverable. A Global Administrator can override with parameters.overrideGuard`);
      expect(guards({ overrideGuard: true }).user(name, uid)).toBeNull();
    }
  });

  it('refuses the account the agent runs as, by name or uid, override or not', () => {
    for (const [name, uid] of [['quell', null], ['quell', 4242], ['renamed', 4242]] as const) {
      for (const overrideGuard of [undefined, true]) {
        expect(guards({ overrideGuard }).user(name, uid)).toMatch(new RegExp(`^${name} \\(uid 4242\\) is guarded \\(the Quell agent's own account, the one it runs as\\): containing it ${NEVER.source}`));
      }
    }
  });

  it('when the agent runs as root, root is the agent\'s own account: never', () => {
    expect(guards({ overrideGuard: true, facts: { agentUid: 0 } }).user('root', null)).toMatch(NEVER);
  });

  it('leaves other accounts alone', () => {
    expect(guards().user('alice', null)).toBeNull();
    expect(guards().user('alice', 1000)).toBeNull();
    expect(guards().user('mallory', null)).toBeNull();
  });
});

describe('executors refuse guarded targets before running any command', () => {
  const nothingRuns = () => new RecordingRunner((command) => failed(1, `${command} must not run`));

  it.each(['sshd.service', 'systemd-journald.service', 'dbus.service', 'quell-agent.service', 'systemd-journald.socket'])('stop_service %s', async (unit) => {
    const runner = nothingRuns();
    await expect(stopService(executionContext(runner, { type: 'stop_service', entity: { name: unit } }))).rejects.toThrow(unit.startsWith('quell') ? NEVER : OVERRIDABLE);
    await expect(stopService(executionContext(runner, { type: 'stop_service', entity: { name: unit }, parameters: { mask: true } }))).rejects.toThrow(/ is guarded \(/);
    expect(runner.calls).toEqual([]);
  });

  it('stop_service: the override lets a Global Administrator stop a critical unit, never the agent\'s', async () => {
    const runner = new RecordingRunner(() => failed(4, '', 'not-found\n'));
    await expect(stopService(executionContext(runner, { type: 'stop_service', entity: { name: 'quell-agent.service' }, parameters: { overrideGuard: true } }))).rejects.toThrow(NEVER);
    expect(runner.take()).toEqual([]);
    await expect(stopService(executionContext(runner, { type: 'stop_service', entity: { name: 'sshd.service' }, parameters: { overrideGuard: true } }))).rejects.toThrow('there is no unit sshd.service on this device');
    expect(runner.take()).toEqual(['systemctl is-active sshd.service', 'systemctl is-enabled sshd.service']);
  });

  it('disable_driver: nftables is refused before a blacklist is written or modprobe runs; with the override it goes ahead', async () => {
    const modprobeDir = join(dir, 'modprobe.d');
    const procModules = file(join(dir, 'driver/modules'), 'nf_tables 356352 0 - Live 0x0000000000000000\n');
    const noTool = join(dir, 'no-update-initramfs');
    const { disableDriver } = driverExecutors({ modprobeDir, procModules, sysModule: join(dir, 'sys-module'), initramfsTools: [[noTool, '-u']] });
    const runner = nothingRuns();
    for (const name of ['nf_tables', 'nf-tables', 'nft_ct', 'nfnetlink']) {
      await expect(disableDriver(executionContext(runner, { type: 'disable_driver', entity: { name } }))).rejects.toThrow(OVERRIDABLE);
    }
    expect(runner.calls).toEqual([]);
    expect(readdirSync(dir)).not.toContain('modprobe.d');

    const kernel = new RecordingRunner(() => {
      writeFileSync(procModules, '');
      return ok();
    });
    const result = await disableDriver(executionContext(kernel, { type: 'disable_driver', entity: { name: 'nf_tables' }, parameters: { overrideGuard: true } }));
    expect(kernel.take()).toEqual(['modprobe -r nf_tables']);
    expect(result.output).toBe(`Unloaded nf_tables and blacklisted it in ${join(modprobeDir, 'quell-blacklist-nf_tables.conf')}; no initramfs tool found (${noTool}): only the root file system's modprobe configuration holds it`);
  });

  it.each(['apt-daily-upgrade.timer', 'logrotate.timer'])('remove_scheduled_task %s (a guarded timer), before its unit file is read', async (name) => {
    const runner = nothingRuns();
    await expect(removeScheduledTask(executionContext(runner, { type: 'remove_scheduled_task', entity: { name } }))).rejects.toThrow(new RegExp(`^${escape(name)} is guarded`));
    await expect(removeScheduledTask(executionContext(runner, { type: 'remove_scheduled_task', entity: { name, path: `/etc/systemd/system/${name}` } }))).rejects.toThrow(OVERRIDABLE);
    expect(runner.calls).toEqual([]);
  });

  it('contain_user root, before the account is looked up', async () => {
    const runner = nothingRuns();
    await expect(containUser(executionContext(runner, { type: 'contain_user', entity: { name: 'root' } }))).rejects.toThrow(/^root \(uid 0\)/);
    expect(runner.calls).toEqual([]);
  });

  it.runIf(process.getuid?.() === 0)('contain_user root, override or not, when the agent runs as root', async () => {
    const runner = nothingRuns();
    await expect(containUser(executionContext(runner, { type: 'contain_user', entity: { name: 'root' }, parameters: { overrideGuard: true, allowSystemAccount: true } }))).rejects.toThrow(NEVER);
    expect(runner.calls).toEqual([]);
  });
});
