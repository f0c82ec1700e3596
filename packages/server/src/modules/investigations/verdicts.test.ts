import { describe, expect, it } from 'vitest';
import { type FileFacts, MALICIOUS_DETECTIONS, fileVerdict, inHiddenFolder } from './verdicts.ts';

const file = (facts: Partial<FileFacts>): FileFacts => ({
  sha256: 'a'.repeat(64), path: '/opt/app/bin/tool', severity: 'low', indicator: null, detections: null, owner: null, pid: null, launchers: [], devices: 1, ...facts,
});

describe('verdict rules', () => {
  it('tells hidden folders from the settings folders in users’ homes', () => {
    for (const path of ['/var/tmp/.x/run', '/usr/lib/.cache/kworker', '/root/.config/.x/miner', '/home/ann/.cache/.k/payload', '/.hidden/bin']) expect(inHiddenFolder(path), path).toBe(true);
    for (const path of ['/root/.local/tool', '/home/ann/.local/bin', '/usr/bin/ls', '/home/ann/.bashrc', '/tmp/a/../b', '/opt/./app/x', 'C:\\Users\\.x\\a.exe']) expect(inHiddenFolder(path), path).toBe(false);
  });

  it('never judges Quell’s own files, trusts unchanged package files unless an indicator says otherwise, and counts engines from the threshold up', () => {
    expect(fileVerdict(file({ owner: { kind: 'quell' }, indicator: { action: 'block', title: 'x' } })).verdict).toBe('no_threats_found');
    const packaged = { owner: { kind: 'package', manager: 'dpkg', name: 'coreutils', verified: true } } as const;
    expect(fileVerdict(file({ ...packaged, detections: { engine: 'VirusTotal', positives: 30, total: 70 } })).verdict).toBe('no_threats_found');
    expect(fileVerdict(file({ ...packaged, indicator: { action: 'block', title: 'trojaned build' } })).verdict).toBe('malicious');
    expect(fileVerdict(file({ detections: { engine: 'VirusTotal', positives: MALICIOUS_DETECTIONS, total: 70 } })).verdict).toBe('malicious');
    expect(fileVerdict(file({ detections: { engine: 'VirusTotal', positives: MALICIOUS_DETECTIONS - 1, total: 70 } })).verdict).toBe('suspicious');
    expect(fileVerdict(file({ detections: { engine: 'VirusTotal', positives: 0, total: 70 } })).verdict).toBe('no_threats_found');
  });

  it('makes persistence count in hidden folders as in temp ones, and needs an alert for a process from a temp folder', () => {
    expect(fileVerdict(file({ path: '/usr/share/.fonts/.x', launchers: ['cron /etc/cron.d/x'] }))).toMatchObject({ verdict: 'malicious', reason: 'an executable in a hidden folder that a persistence entry launches: cron /etc/cron.d/x' });
    expect(fileVerdict(file({ path: '/opt/app/bin/tool', launchers: ['systemd /etc/systemd/system/app.service'] })).verdict).toBe('no_threats_found');
    expect(fileVerdict(file({ path: '/tmp/build/dev', pid: 7 })).verdict).toBe('suspicious');
    expect(fileVerdict(file({ path: '/tmp/build/dev', pid: 7, severity: null })).verdict).toBe('no_threats_found');
  });
});
