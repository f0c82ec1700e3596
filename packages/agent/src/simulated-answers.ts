import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { ActionType, AntivirusScanReport, CommandOf, CommandPayload, EvidenceReport } from '@quell/contracts';
import { scanRoots } from './executors/antivirus-scan.linux.ts';
import { requestedPaths } from './executors/evidence.linux.ts';

/** What a simulated agent answers to a command: a result as the real agent would sign it. */
export type SimulatedAnswer = { outcome: 'completed'; output: string } | { outcome: 'failed'; error: string };

/** What a simulated device is, for the answers it gives. */
export interface SimulatedDevice { deviceId: string; hostname: string }

/** A stable, realistic-looking SHA-256 (or SHA-1, MD5) for something on a simulated device. */
const fakeDigest = (algorithm: 'sha256' | 'sha1' | 'md5', ...parts: string[]): string => createHash(algorithm).update(parts.join('\0')).digest('hex');
const fakeHash = (...parts: string[]): string => fakeDigest('sha256', ...parts);

/**
 * What a simulated device has running and starting things: an ordinary
 * server, nothing in temp folders, so an investigation finds in its
 * evidence what its alerts say and no more.
 */
export function simulatedEvidence(command: CommandOf<'collect_evidence'>, device: SimulatedDevice): EvidenceReport {
  const programs = [
    ['/opt/app/bin/app-server', '/opt/app/bin/app-server --config /etc/app/server.yaml'],
    ['/usr/local/bin/node_exporter', '/usr/local/bin/node_exporter --web.listen-address=:9100'],
    ['/opt/quell/bin/node', '/opt/quell/bin/node /opt/quell/quell-agent.mjs run --dir /var/lib/quell-agent'],
  ] as const;
  return {
    // The agent's own process is the one Quell put there.
    processes: programs.map(([exe, commandLine], i) => ({ pid: 700 + 97 * i, exe, sha256: fakeHash(exe), commandLine, ...(exe === '/opt/quell/bin/node' ? { owner: { kind: 'quell' as const } } : {}) })),
    persistence: [
      { kind: 'cron', source: '/etc/crontab', text: '17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly' },
      { kind: 'cron', source: '/etc/cron.d/app-backup', text: '30 2 * * * app /opt/app/bin/backup --quiet' },
      { kind: 'systemd', source: '/etc/systemd/system/app-server.service', text: 'ExecStart=/opt/app/bin/app-server --config /etc/app/server.yaml' },
      ...['nf_tables', 'overlay', 'ext4'].map((module) => ({ kind: 'kernel_module' as const, source: '/proc/modules', text: module })),
    ],
    // The files the alerts name are still there, each with the hashes the device reads for it.
    files: requestedPaths(command.parameters.paths).map((path) => ({
      path, sha256: fakeHash(device.deviceId, path), sha1: fakeDigest('sha1', device.deviceId, path), md5: fakeDigest('md5', device.deviceId, path),
    })),
    leftOut: 0,
  };
}

/** A scan of the asked-for folders that finds nothing. */
export function simulatedScan(command: CommandOf<'run_antivirus_scan'>): AntivirusScanReport {
  const { kind, roots } = scanRoots(command.parameters.scan, command.parameters.roots);
  const files = kind === 'full' ? 184_213 : 1_842 * roots.length;
  return {
    scan: kind, roots, missingRoots: [], scanned: files, bytes: files * 21_873, directories: Math.ceil(files / 9),
    skipped: { symlinks: Math.ceil(files / 50), special: 4, tooLarge: kind === 'full' ? 12 : 0, excludedMounts: kind === 'full' ? 3 : 0, unreadable: 0 },
    findings: [], findingsLeftOut: 0, errors: [], durationMs: Math.ceil(files / 6),
  };
}

/** A tar archive (ustar) of small text files, gzip-compressed: what the real agent uploads, in miniature. */
export function tarGz(files: Record<string, string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, text] of Object.entries(files)) {
    const body = Buffer.from(text);
    const header = Buffer.alloc(512);
    const field = (offset: number, length: number, value: string): void => void header.write(value.slice(0, length), offset, length, 'latin1');
    const octal = (offset: number, length: number, value: number): void => field(offset, length - 1, value.toString(8).padStart(length - 1, '0'));
    field(0, 100, name);
    octal(100, 8, 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, body.length);
    octal(136, 12, Math.floor(Date.now() / 1000));
    field(148, 8, ' '.repeat(8));
    field(156, 1, '0');
    field(257, 6, 'ustar\0');
    field(263, 2, '00');
    field(265, 32, 'root');
    field(297, 32, 'root');
    const checksum = header.reduce((sum, byte) => sum + byte, 0);
    field(148, 8, `${checksum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  return gzipSync(Buffer.concat([...blocks, Buffer.alloc(1024)]));
}

/** The investigation package of a simulated device: the files the real agent collects first, with plausible content. */
export function simulatedPackage(command: CommandPayload, device: SimulatedDevice): { bytes: Buffer; files: number } {
  const files = {
    './processes.txt': '    PID    PPID USER     COMMAND\n      1       0 root     /sbin/init\n    700       1 app      /opt/app/bin/app-server --config /etc/app/server.yaml\n',
    './network-tcp.txt': 'State  Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN 0      4096  0.0.0.0:22         0.0.0.0:*\nLISTEN 0      4096  0.0.0.0:9100       0.0.0.0:*\n',
    './users.txt': 'root:x:0:0:root:/root:/bin/bash\napp:x:1001:1001::/opt/app:/usr/sbin/nologin\n',
    './cron.txt': '== /etc/crontab\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n',
    './kernel-modules.txt': 'nf_tables 360448 0 - Live 0x0000000000000000\n',
    './auth-log.txt': `${new Date().toISOString()} ${device.hostname} sshd[1021]: Accepted publickey for app from 192.0.2.10 port 50122 ssh2\n`,
    './packages.txt': 'ii  openssh-server 1:9.2p1-2 amd64 secure shell (SSH) server\n',
    './collected.txt': `device ${command.deviceId}\naction ${command.actionId}\ncollected ${new Date().toISOString()}\n`,
  };
  return { bytes: tarGz(files), files: Object.keys(files).length };
}

type Upload = (bytes: Buffer) => Promise<void>;

/**
 * What each action type's executor reports on the simulated device: the
 * words the real executors use, and for evidence and scans the reports
 * their schemas describe. The investigation package is uploaded, signed.
 */
const SAID: { [T in ActionType]: (command: CommandOf<T>, device: SimulatedDevice, upload: Upload) => string | Promise<string> } = {
  isolate_device: (c) => `Isolated (${c.parameters.isolation === 'selective' ? 'selective' : 'full'}); reachable: loopback, the Quell server; DHCP and IPv6 neighbour discovery kept; forwarded traffic (containers, VMs) dropped`,
  release_isolation: () => 'Released from isolation',
  contain_device: (c) => `Contained ${c.entity.name}`,
  release_containment: (c) => `Released the containment of ${c.entity.name}`,
  contain_user: (c) => `Locked ${c.entity.name}: password locked, account expired; ended 0 sessions and 0 processes`,
  release_user: (c) => `Released ${c.entity.name}: password and expiry as they were`,
  restrict_code_execution: () => 'Restricted code execution: /tmp, /var/tmp and /dev/shm mounted noexec,nosuid,nodev',
  remove_code_restriction: () => 'Removed code restriction: /tmp, /var/tmp and /dev/shm back to their prior options',
  quarantine_file: (c) => `Quarantined ${c.entity.path ?? c.entity.name} (SHA-256 ${c.entity.sha256 ?? fakeHash(c.entity.name)}) into the vault`,
  stop_and_quarantine_file: (c) => `Ended 1 process running ${c.entity.path ?? c.entity.name}; quarantined it (SHA-256 ${c.entity.sha256 ?? fakeHash(c.entity.name)}) into the vault`,
  restore_file: (c) => `Restored ${c.entity.path ?? c.entity.name} (SHA-256 ${c.entity.sha256 ?? fakeHash(c.entity.name)}, mode 755, owner 0:0)`,
  remove_registry_key: (c) => `Removed ${c.entity.name}`,
  restore_registry_key: (c) => `Restored ${c.entity.name}`,
  stop_service: (c) => `Stopped ${c.entity.name} (was active, enabled; now inactive, ${c.parameters.mask === true ? 'masked' : 'disabled'})`,
  restore_service: (c) => `Restored ${c.entity.name}: active, enabled`,
  disable_driver: (c) => `Unloaded ${c.entity.name} and blacklisted it in /etc/modprobe.d/quell-${c.entity.name}.conf`,
  restore_driver: (c) => `Restored ${c.entity.name}: loaded again; removed /etc/modprobe.d/quell-${c.entity.name}.conf`,
  remove_scheduled_task: (c) => `Removed ${c.entity.path ?? c.entity.name}`,
  restore_scheduled_task: (c) => `Restored ${c.entity.path ?? c.entity.name}`,
  remove_persistence: (c) => `Removed ${typeof c.parameters.line === 'string' ? `a line of ${c.entity.path ?? c.entity.name}` : c.entity.path ?? c.entity.name}`,
  restore_persistence: (c) => `Restored ${c.entity.path ?? c.entity.name}`,
  run_antivirus_scan: (c) => JSON.stringify(simulatedScan(c)),
  collect_investigation_package: async (c, device, upload) => {
    const { bytes, files } = simulatedPackage(c, device);
    await upload(bytes);
    return `Investigation package of ${bytes.length} bytes uploaded (${files} files)`;
  },
  collect_evidence: (c, device) => JSON.stringify(simulatedEvidence(c, device)),
};

/** The answer a simulated device gives: completed with what the real agent would report, or failed with why (a command it cannot read). */
export async function realisticAnswer(command: CommandPayload, device: SimulatedDevice, upload: Upload): Promise<SimulatedAnswer> {
  try {
    // A command from the server was checked against its type's parameter schema: its type's answer takes it.
    const said = SAID[command.type] as (command: CommandPayload, device: SimulatedDevice, upload: Upload) => string | Promise<string>;
    return { outcome: 'completed', output: await said(command, device, upload) };
  } catch (error) {
    return { outcome: 'failed', error: (error as Error).message };
  }
}
