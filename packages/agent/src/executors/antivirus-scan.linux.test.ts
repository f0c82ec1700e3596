import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACTION_OUTPUT_MAX_CHARS, type ActionParameters, AntivirusScanReportSchema } from '@quell/contracts';
import { parseJsonAs } from '@quell/contracts/checks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_INDICATOR, EICAR, type ScanReport, antivirusScanExecutor, parseMountInfo, runAntivirusScan } from './antivirus-scan.linux.ts';
import { RecordingRunner, executionContext } from './test/recording-runner.ts';

const EICAR_SHA256 = '275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f';
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** Root reads every file whatever its mode, so an unreadable file needs the scan to run with another effective user. */
async function asUnprivileged<T>(work: () => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0) return work();
  process.seteuid!(65534);
  try {
    return await work();
  } finally {
    process.seteuid!(0);
  }
}

describe('run_antivirus_scan over real files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quell-scan-'));
  const root = join(dir, 'root');
  const mountInfo = join(dir, 'mountinfo');
  const payload = randomBytes(3000);
  const runner = new RecordingRunner(() => {
    throw new Error('a scan runs no commands');
  });
  const scan = antivirusScanExecutor({ mountInfo, maxFileBytes: 4096 });
  const run = async (parameters: ActionParameters<'run_antivirus_scan'>) => {
    const { output, snapshot } = await scan(executionContext(runner, { type: 'run_antivirus_scan', entity: { name: 'device' }, parameters }));
    expect(snapshot).toBeUndefined();
    return JSON.parse(output) as ScanReport;
  };

  beforeAll(() => {
    mkdirSync(join(root, 'nested', 'deeper'), { recursive: true });
    mkdirSync(join(root, 'proc-like'));
    chmodSync(dir, 0o755);
    writeFileSync(join(root, 'eicar.com'), EICAR);
    writeFileSync(join(root, 'eicar-trailer.txt'), `${EICAR}\r\n   \r\n`);
    writeFileSync(join(root, 'nested', 'deeper', 'payload.bin'), payload);
    writeFileSync(join(root, 'clean.txt'), 'nothing to see here\n');
    writeFileSync(join(root, 'nested', 'readme.md'), '# notes\n');
    writeFileSync(join(root, 'mentions-eicar.txt'), `the test string is ${EICAR}\n`);
    writeFileSync(join(root, 'empty'), '');
    writeFileSync(join(root, 'too-large.bin'), Buffer.concat([Buffer.from(EICAR), Buffer.alloc(5000)]));
    writeFileSync(join(root, 'unreadable.com'), EICAR, { mode: 0o000 });
    chmodSync(join(root, 'unreadable.com'), 0o000);
    // A pseudo-file-system mount point, as the mount table says: its files are never read.
    writeFileSync(join(root, 'proc-like', 'eicar.com'), EICAR);
    // A namespace handle bound onto a file, as `ip netns add` makes them.
    writeFileSync(join(root, 'netns-handle'), EICAR);
    writeFileSync(mountInfo, [
      '22 27 0:21 / /proc rw,relatime - proc proc rw',
      '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
      `90 27 0:90 / ${join(root, 'proc-like')} rw,relatime - proc proc rw`,
      `91 27 0:4 net:[4026532248] ${join(root, 'netns-handle')} rw shared:3 - nsfs nsfs rw`,
      '',
    ].join('\n'));
    symlinkSync('loop-b', join(root, 'loop-a'));
    symlinkSync('loop-a', join(root, 'loop-b'));
    symlinkSync('..', join(root, 'nested', 'up'));
    symlinkSync(join(root, 'eicar.com'), join(root, 'eicar-link'));
    execFileSync('mkfifo', [join(root, 'pipe')]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the EICAR file by hash and by its opening bytes, and a block indicator, and nothing else', async () => {
    const report = await asUnprivileged(() => run({ roots: [root], blockSha256: [sha256(payload).toUpperCase(), 'ab'.repeat(32)] }));
    expect([...report.findings].sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: join(root, 'eicar-trailer.txt'), sha256: sha256(`${EICAR}\r\n   \r\n`), signature: 'EICAR-Test-File' },
      { path: join(root, 'eicar.com'), sha256: EICAR_SHA256, signature: 'EICAR-Test-File' },
      { path: join(root, 'nested', 'deeper', 'payload.bin'), sha256: sha256(payload), signature: BLOCK_INDICATOR },
    ]);
    expect(report).toMatchObject({
      scan: 'custom', roots: [root], missingRoots: [],
      scanned: 7, // the three findings, clean.txt, readme.md, mentions-eicar.txt, empty
      directories: 3,
      skipped: { symlinks: 4, special: 1, tooLarge: 1, excludedMounts: 2, unreadable: 1 },
      findingsLeftOut: 0,
      errors: [{ path: join(root, 'unreadable.com'), error: 'EACCES' }],
    });
    expect(runner.calls).toEqual([]);
  });

  it('without block indicators, the payload is just another clean file', async () => {
    const report = await run({ roots: [join(root, 'nested')] });
    expect(report.findings).toEqual([]);
    expect(report.scanned).toBe(2);
    expect(report.skipped.symlinks).toBe(1);
  });

  it('scans a file named as a root, follows a root that is a link, and lists roots that do not exist', async () => {
    const report = await run({ roots: [join(root, 'eicar.com'), join(root, 'eicar-link'), join(dir, 'absent')] });
    // The link leads to the same file, which is scanned once.
    expect(report.findings.map((finding) => finding.path)).toEqual([join(root, 'eicar.com')]);
    expect(report.scanned).toBe(1);
    expect(report.missingRoots).toEqual([join(dir, 'absent')]);
  });

  it('finds files by the SHA-1 and MD5 block indicators of the state in force, as by SHA-256', async () => {
    const digest = (algorithm: string): string => createHash(algorithm).update(payload).digest('hex');
    for (const blocked of [digest('sha1'), digest('md5')]) {
      const ctx = executionContext(runner, { type: 'run_antivirus_scan', entity: { name: 'device' }, parameters: { roots: [root] } });
      const report = JSON.parse((await scan({ ...ctx, blockHashes: new Set([blocked]) })).output) as ScanReport;
      expect(report.findings.filter((finding) => finding.signature === BLOCK_INDICATOR).map((finding) => finding.sha256)).toEqual([sha256(payload)]);
    }
  });

  it('walks a directory only once when roots overlap', async () => {
    const report = await run({ roots: [join(root, 'nested'), root], blockSha256: [sha256(payload)] });
    expect(report.directories).toBe(3);
    expect(report.findings.filter((finding) => finding.signature === BLOCK_INDICATOR)).toHaveLength(1);
  });

  it('refuses unknown scan types, relative roots and malformed block indicators before reading anything', async () => {
    await expect(run({ scan: 'deep' as 'full' })).rejects.toThrow('scan must be "quick" or "full"');
    await expect(run({ roots: ['tmp'] })).rejects.toThrow('not an absolute path to scan');
    await expect(run({ roots: [root], blockSha256: ['deadbeef'] })).rejects.toThrow('not a SHA-256 block indicator: "deadbeef"');
  });

  it('reports many findings within what the server takes whole, counting those left out, as the report\'s schema says', async () => {
    const many = join(dir, 'many');
    mkdirSync(many);
    // 300 detections with long names: listed in full they would be over 80 000 characters.
    for (let i = 0; i < 300; i++) writeFileSync(join(many, `${String(i).padStart(3, '0')}-${'x'.repeat(240)}.com`), EICAR);
    const { output } = await scan(executionContext(runner, { type: 'run_antivirus_scan', entity: { name: 'device' }, parameters: { roots: [many] } }));
    expect(output.length).toBeLessThanOrEqual(ACTION_OUTPUT_MAX_CHARS);
    const report = parseJsonAs(AntivirusScanReportSchema, output, ACTION_OUTPUT_MAX_CHARS);
    expect(report.ok).toBe(true);
    if (!report.ok) return;
    expect(report.value.findings.length).toBeGreaterThan(100);
    expect(report.value.findings.length + report.value.findingsLeftOut).toBe(300);
  });

  it('reads mount points from the mount table, escapes included, the last mount on a point winning', () => {
    const mounts = parseMountInfo([
      '25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw',
      '44 42 0:4 net:[4026532248] /run/netns/a\\040b rw shared:3 - nsfs nsfs rw',
      '45 25 0:24 / /dev/shm rw,relatime - devtmpfs devtmpfs rw',
    ].join('\n'));
    expect(Object.fromEntries(mounts)).toEqual({ '/dev/shm': 'devtmpfs', '/run/netns/a b': 'nsfs' });
  });

  it('the agent\'s scan uses the system mount table and finds an EICAR file under /dev/shm, which a walk from / would skip', async () => {
    const shm = mkdtempSync('/dev/shm/quell-scan-');
    try {
      writeFileSync(join(shm, 'x.com'), EICAR);
      const { output } = await runAntivirusScan(executionContext(runner, { type: 'run_antivirus_scan', entity: { name: 'device' }, parameters: { roots: [shm] } }));
      expect((JSON.parse(output) as ScanReport).findings).toEqual([{ path: join(shm, 'x.com'), sha256: EICAR_SHA256, signature: 'EICAR-Test-File' }]);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });
});
