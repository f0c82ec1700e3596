import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { type EvidenceReport, EvidenceReportSchema } from '@quell/contracts';
import { checkValue } from '@quell/contracts/checks';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { type EvidenceLayout, evidenceReport, startupEntries } from './evidence.linux.ts';
import { parseDpkgOwners, parseRpmRecords } from './package-records.linux.ts';
import { RecordingRunner, executionContext, failed } from './test/recording-runner.ts';

describe('evidence: startup persistence', () => {
  const root = mkdtempSync('/var/tmp/quell-startup-');
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const file = (path: string, text: string): string => {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, text);
    return full;
  };

  it('reports the lines of startup files that name a temp, download or hidden folder, every line of a drop-in or ld.so.preload once one does, and nothing else', async () => {
    const bashrc = file('etc/bash.bashrc', '# system bashrc\n[ -z "$PS1" ] && return\n(/var/tmp/.x/run &) 2>/dev/null\nalias ll="ls -l"\n');
    const profile = file('etc/profile', 'export PATH=/usr/local/bin:/usr/bin\n');
    const preload = file('etc/ld.so.preload', '/usr/lib/libfast.so\n/dev/shm/.lib/libhide.so\n');
    const dropIn = file('etc/profile.d/zz-helper.sh', '#!/bin/sh\nexport HELPER=1\nnohup /tmp/.helper/run >/dev/null 2>&1 &\n');
    file('etc/profile.d/vendor.sh', 'export JAVA_HOME=/usr/lib/jvm/default\n');
    const keys = file('home/eve/.ssh/authorized_keys', 'ssh-ed25519 AAAAC3Nz eve@laptop\ncommand="/home/eve/Downloads/agent" ssh-ed25519 AAAAC3Nx backdoor\n');
    const zshrc = file('root/.zshrc', 'export EDITOR=vim\n');
    // A udev rule running something from a hidden folder, and a user's autostart entry.
    const rule = file('etc/udev/rules.d/99-usb.rules', 'ACTION=="add", SUBSYSTEM=="usb", RUN+="/usr/lib/.x/run"\n');
    file('etc/udev/rules.d/60-vendor.rules', 'SUBSYSTEM=="block", RUN+="/usr/lib/udev/vendor-helper"\n');
    const autostart = file('home/eve/.config/autostart/helper.desktop', '[Desktop Entry]\nType=Application\nExec=/home/eve/.cache/.h/helper\n');
    // A link is never followed, even to a file that names a temp folder.
    symlinkSync(bashrc, join(root, 'root', '.bashrc'));

    const entries = await startupEntries({
      lineOnly: [bashrc, profile, join(root, 'etc/rc.local')], whole: [preload], dropInDirs: [join(root, 'etc/profile.d'), join(root, 'etc/udev/rules.d')], homes: [join(root, 'root'), join(root, 'home/eve')],
    });
    expect(entries).toEqual([
      { kind: 'startup', source: bashrc, text: '(/var/tmp/.x/run &) 2>/dev/null' },
      { kind: 'startup', source: keys, text: 'command="/home/eve/Downloads/agent" ssh-ed25519 AAAAC3Nx backdoor' },
      { kind: 'startup', source: preload, text: '/usr/lib/libfast.so' },
      { kind: 'startup', source: preload, text: '/dev/shm/.lib/libhide.so' },
      { kind: 'startup', source: dropIn, text: 'export HELPER=1' },
      { kind: 'startup', source: dropIn, text: 'nohup /tmp/.helper/run >/dev/null 2>&1 &' },
      { kind: 'startup', source: rule, text: 'ACTION=="add", SUBSYSTEM=="usb", RUN+="/usr/lib/.x/run"' },
      { kind: 'startup', source: autostart, text: '[Desktop Entry]' },
      { kind: 'startup', source: autostart, text: 'Type=Application' },
      { kind: 'startup', source: autostart, text: 'Exec=/home/eve/.cache/.h/helper' },
    ]);
    expect(entries.some((e) => e.source === zshrc)).toBe(false);
    expect(checkValue(EvidenceReportSchema, { processes: [], persistence: entries, files: [], leftOut: 0 })).toMatchObject({ ok: true });
  });
});

describe('evidence: what each file is, and whose', () => {
  const root = mkdtempSync('/var/tmp/quell-evidence-');
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });
  const digest = (algorithm: string, bytes: Buffer | string): string => createHash(algorithm).update(bytes).digest('hex');
  const file = (path: string, bytes: Buffer | string): string => {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, bytes);
    return full;
  };
  /** A dpkg database holding only these installed packages, each listing its files with the MD5 it recorded for them. */
  const dpkgDatabase = (packages: Record<string, Record<string, string>>): string => {
    const admindir = mkdtempSync(join(root, 'dpkg-'));
    mkdirSync(join(admindir, 'info'));
    writeFileSync(join(admindir, 'status'), Object.keys(packages).map((name) => `Package: ${name}\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\nMaintainer: Quell <quell@example.com>\nDescription: test\n`).join('\n'));
    for (const [name, files] of Object.entries(packages)) {
      writeFileSync(join(admindir, 'info', `${name}.list`), Object.keys(files).map((path) => `${path}\n`).join(''));
      writeFileSync(join(admindir, 'info', `${name}.md5sums`), Object.entries(files).map(([path, md5]) => `${md5}  ${path.slice(1)}\n`).join(''));
    }
    return admindir;
  };
  const layout = (dpkgAdmindir: string, agent: Partial<EvidenceLayout['agent']> = {}, rpmDbPath?: string): EvidenceLayout => ({
    startup: { lineOnly: [], whole: [], dropInDirs: [], homes: [] },
    dpkgAdmindir,
    ...(rpmDbPath === undefined ? {} : { rpmDbPath }),
    agent: { agentScript: null, agentInterpreter: join(root, 'no-interpreter'), ...agent },
  });
  const report = async (paths: string[], where: EvidenceLayout, agentDir = join(root, 'no-agent')) => {
    const ctx = executionContext(new RecordingRunner(() => failed(1, 'evidence runs no command through the runner')), { type: 'collect_evidence', entity: { name: 'device' }, parameters: { paths } }, { agentDir });
    const result = await evidenceReport(ctx, where);
    expect(checkValue(EvidenceReportSchema, result)).toMatchObject({ ok: true });
    return result;
  };
  /** Runs a copy of sleep from `path`: a process whose executable is outside the system's folders. */
  const running = async (path: string): Promise<number> => {
    mkdirSync(join(path, '..'), { recursive: true });
    copyFileSync('/usr/bin/sleep', path);
    const child = spawn(path, ['300'], { stdio: 'ignore' });
    children.push(child);
    await once(child, 'spawn');
    return child.pid!;
  };

  it('reports each file asked for with its SHA-256, SHA-1 and MD5, and never reads through a link', async () => {
    const bytes = randomBytes(300_000);
    const payload = file('drop/payload.bin', bytes);
    const link = join(root, 'drop/env-link');
    symlinkSync('/usr/bin/env', link);
    const { files } = await report([payload, link], layout(dpkgDatabase({})));
    expect(files).toEqual([
      { path: payload, sha256: digest('sha256', bytes), sha1: digest('sha1', bytes), md5: digest('md5', bytes) },
      { path: link, sha256: null, note: `${link} is a symbolic link; links are never followed: refused` },
    ]);
  });

  it('names the dpkg package of a file this machine installed, verified as it is, and no package for a file no package installed', async () => {
    const owner = execFileSync('dpkg-query', ['-S', '/usr/bin/env'], { encoding: 'utf8' }).split(':')[0];
    const stray = file('stray/tool', 'not from a package\n');
    const { files } = await report(['/usr/bin/env', stray], layout('/var/lib/dpkg'));
    expect(files[0]).toMatchObject({ path: '/usr/bin/env', owner: { kind: 'package', manager: 'dpkg', name: owner, verified: true } });
    expect(files[1]).not.toHaveProperty('owner');
  });

  it('verifies a file and a running executable against the MD5 dpkg recorded, and asks dpkg about no pattern', async () => {
    const kept = file('pkg/kept.conf', 'as installed\n');
    const altered = file('pkg/altered.conf', 'changed since\n');
    const unlisted = file('pkg/unlisted.conf', 'no md5sums line\n');
    // A file whose name dpkg-query would read as a pattern: dpkg lists it, and still it is not asked about.
    const star = file('pkg/*', 'a star\n');
    const sleeper = join(root, 'pkg/bin/sleeper');
    const pid = await running(sleeper);
    const admindir = dpkgDatabase({
      'quell-test-tool': { [kept]: digest('md5', 'as installed\n'), [altered]: digest('md5', 'as installed\n'), [star]: digest('md5', 'a star\n'), [sleeper]: digest('md5', readFileSync(sleeper)) },
    });
    writeFileSync(join(admindir, 'info', 'quell-test-tool.list'), `${unlisted}\n`, { flag: 'a' });
    const { files, processes } = await report([kept, altered, unlisted, star], layout(admindir));
    const owned = (verified: boolean) => ({ kind: 'package', manager: 'dpkg', name: 'quell-test-tool', verified });
    expect(files.map((f) => [f.path, f.owner])).toEqual([[kept, owned(true)], [altered, owned(false)], [unlisted, owned(false)], [star, undefined]]);
    expect(processes.find((p) => p.pid === pid)).toMatchObject({ exe: sleeper, owner: owned(true) });
  });

  it('gives each process its ancestors, through the system shells the report leaves out', async () => {
    const child = join(root, 'tree/bin/child');
    mkdirSync(join(child, '..'), { recursive: true });
    copyFileSync('/usr/bin/sleep', child);
    // sh stays the parent (two commands: it cannot exec the first), and is itself left out as a system executable.
    const shell = spawn('/bin/sh', ['-c', `${child} 300; true`], { stdio: 'ignore', detached: true });
    await once(shell, 'spawn');
    onTestFinished(() => void process.kill(-shell.pid!, 'SIGKILL'));
    let found: EvidenceReport['processes'][number] | undefined;
    for (let i = 0; i < 50 && !found; i++) {
      found = (await report([], layout(join(root, 'no-dpkg')))).processes.find((p) => p.exe === child);
      if (!found) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(found?.ancestors?.slice(0, 2)).toEqual([shell.pid, process.pid]);
  });

  it('marks the agent\'s own files and programs Quell\'s, by the file itself, even where a package lists them', async () => {
    const agentDir = join(root, 'agent');
    const state = file('agent/state/desired-state.json', '{}\n');
    const script = file('opt/quell/quell-agent.mjs', '// the agent\n');
    const scriptLink = join(root, 'opt/quell-agent-again.mjs');
    linkSync(script, scriptLink);
    const interpreter = join(root, 'opt/quell/bin/node');
    const pid = await running(interpreter);
    const admindir = dpkgDatabase({ 'quell-agent': { [script]: digest('md5', '// the agent\n') } });
    const { files, processes } = await report([state, script, scriptLink], layout(admindir, { agentScript: script, agentInterpreter: interpreter }), agentDir);
    expect(files.map((f) => f.owner)).toEqual([{ kind: 'quell' }, { kind: 'quell' }, { kind: 'quell' }]);
    expect(processes.find((p) => p.pid === pid)).toMatchObject({ exe: interpreter, owner: { kind: 'quell' } });
  });

  it('names the rpm package of a file dpkg does not own, verified by the MD5 or SHA-256 rpm recorded', async () => {
    const dbPath = join(root, 'rpmdb');
    /** Builds a package of these files as they are now and records it as installed in the test database (files are not touched). */
    const install = (name: string, digestAlgorithm: 1 | 8, paths: string[]): void => {
      const top = join(root, `rpmbuild-${name}`);
      const spec = file(`${name}.spec`, [
        `Name: ${name}`, 'Version: 1', 'Release: 1', 'Summary: test', 'License: MIT', 'BuildArch: noarch', '%description', 'test', '%install',
        ...paths.flatMap((path) => [`mkdir -p %{buildroot}${join(path, '..')}`, `cp ${path} %{buildroot}${path}`]), '%files', ...paths, '',
      ].join('\n'));
      execFileSync('rpmbuild', ['-bb', '--define', `_topdir ${top}`, '--define', `_binary_filedigest_algorithm ${digestAlgorithm}`, '--define', '__spec_install_post %{nil}', '--define', 'debug_package %{nil}', spec], { stdio: 'ignore' });
      execFileSync('rpm', ['--dbpath', dbPath, '-i', '--justdb', '--nodeps', '--noscripts', join(top, 'RPMS/noarch', `${name}-1-1.noarch.rpm`)], { stdio: 'ignore' });
    };
    const old = file('rpm/old-rpm.bin', 'md5 era\n');
    const kept = file('rpm/kept.bin', 'as installed\n');
    const altered = file('rpm/altered.bin', 'as installed\n');
    install('quell-test-md5', 1, [old]);
    install('quell-test-sha256', 8, [kept, altered]);
    writeFileSync(altered, 'changed since\n');
    const { files } = await report([old, kept, altered], layout(dpkgDatabase({}), {}, dbPath));
    expect(files.map((f) => f.owner)).toEqual([
      { kind: 'package', manager: 'rpm', name: 'quell-test-md5', verified: true },
      { kind: 'package', manager: 'rpm', name: 'quell-test-sha256', verified: true },
      { kind: 'package', manager: 'rpm', name: 'quell-test-sha256', verified: false },
    ]);
  });

  it('takes from dpkg-query only owners of the very paths asked, never a diversion line or a pattern\'s match', () => {
    const output = [
      'diversion by linux-perf from: /usr/share/man/man1/perf.1.gz',
      'diversion by linux-perf to: /usr/share/man/man1/perf.wrapper.1.gz',
      'linux-perf: /usr/share/man/man1/perf.1.gz',
      'libc6:amd64, libc6-dev:amd64: /usr/lib/x86_64-linux-gnu/libc.so',
      'coreutils: /usr/bin/envy',
      '',
    ].join('\n');
    expect(parseDpkgOwners(output, new Set(['/usr/share/man/man1/perf.1.gz', '/usr/share/man/man1/perf.wrapper.1.gz', '/usr/lib/x86_64-linux-gnu/libc.so', '/usr/bin/env']))).toEqual(new Map([
      ['/usr/share/man/man1/perf.1.gz', ['linux-perf']],
      ['/usr/lib/x86_64-linux-gnu/libc.so', ['libc6:amd64', 'libc6-dev:amd64']],
    ]));
  });

  it('takes from rpm the digest recorded for the very paths asked, once per package', () => {
    const output = [
      'bash\t\t/etc/skel',
      'bash\t0d42e2d0bd9b2d9b2b0a7ba2d0dbd35b0e2a4c3d5f1e3b4ad1c0b1e5d6e7f809\t/usr/bin/bash',
      'bash\t6883d825fff619098a7e8a48daca154e\t/usr/bin/bashbug',
      'bash\t0d42e2d0bd9b2d9b2b0a7ba2d0dbd35b0e2a4c3d5f1e3b4ad1c0b1e5d6e7f809\t/usr/bin/bash',
      'file /tmp/x is not owned by any package',
      '',
    ].join('\n');
    expect(parseRpmRecords(output, new Set(['/usr/bin/bash', '/etc/skel', '/tmp/x']))).toEqual(new Map([
      ['/etc/skel', [{ manager: 'rpm', name: 'bash', digest: null }]],
      ['/usr/bin/bash', [{ manager: 'rpm', name: 'bash', digest: '0d42e2d0bd9b2d9b2b0a7ba2d0dbd35b0e2a4c3d5f1e3b4ad1c0b1e5d6e7f809' }]],
    ]));
  });
});
