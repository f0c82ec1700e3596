import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EvidenceReportSchema } from '@quell/contracts';
import { checkValue } from '@quell/contracts/checks';
import { afterAll, describe, expect, it } from 'vitest';
import { startupEntries } from './evidence.linux.ts';

describe('evidence: startup persistence', () => {
  const root = mkdtempSync('/var/tmp/quell-startup-');
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const file = (path: string, text: string): string => {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, text);
    return full;
  };

  it('reports the lines of startup files that name a temp or download folder, every line of a drop-in or ld.so.preload once one does, and nothing else', async () => {
    const bashrc = file('etc/bash.bashrc', '# system bashrc\n[ -z "$PS1" ] && return\n(/var/tmp/.x/run &) 2>/dev/null\nalias ll="ls -l"\n');
    const profile = file('etc/profile', 'export PATH=/usr/local/bin:/usr/bin\n');
    const preload = file('etc/ld.so.preload', '/usr/lib/libfast.so\n/dev/shm/.lib/libhide.so\n');
    const dropIn = file('etc/profile.d/zz-helper.sh', '#!/bin/sh\nexport HELPER=1\nnohup /tmp/.helper/run >/dev/null 2>&1 &\n');
    file('etc/profile.d/vendor.sh', 'export JAVA_HOME=/usr/lib/jvm/default\n');
    const keys = file('home/eve/.ssh/authorized_keys', 'ssh-ed25519 AAAAC3Nz eve@laptop\ncommand="/home/eve/Downloads/agent" ssh-ed25519 AAAAC3Nx backdoor\n');
    const zshrc = file('root/.zshrc', 'export EDITOR=vim\n');
    // A link is never followed, even to a file that names a temp folder.
    symlinkSync(bashrc, join(root, 'root', '.bashrc'));

    const entries = await startupEntries({
      lineOnly: [bashrc, profile, join(root, 'etc/rc.local')], whole: [preload], dropInDirs: [join(root, 'etc/profile.d')], homes: [join(root, 'root'), join(root, 'home/eve')],
    });
    expect(entries).toEqual([
      { kind: 'startup', source: bashrc, text: '(/var/tmp/.x/run &) 2>/dev/null' },
      { kind: 'startup', source: keys, text: 'command="/home/eve/Downloads/agent" ssh-ed25519 AAAAC3Nx backdoor' },
      { kind: 'startup', source: preload, text: '/usr/lib/libfast.so' },
      { kind: 'startup', source: preload, text: '/dev/shm/.lib/libhide.so' },
      { kind: 'startup', source: dropIn, text: 'export HELPER=1' },
      { kind: 'startup', source: dropIn, text: 'nohup /tmp/.helper/run >/dev/null 2>&1 &' },
    ]);
    expect(entries.some((e) => e.source === zshrc)).toBe(false);
    expect(checkValue(EvidenceReportSchema, { processes: [], persistence: entries, files: [], leftOut: 0 })).toMatchObject({ ok: true });
  });
});
