import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExecutionError } from './executor.ts';
import { RecordingRunner, executionContext, failed, ok } from './test/recording-runner.ts';
import { registryKeyPath, removeRegistryKey, restoreRegistryKey } from './registry-key.windows.ts';

const LONG_HIVE: Record<string, string> = { HKLM: 'HKEY_LOCAL_MACHINE', HKCU: 'HKEY_CURRENT_USER', HKCR: 'HKEY_CLASSES_ROOT', HKU: 'HKEY_USERS', HKCC: 'HKEY_CURRENT_CONFIG' };
const NOT_FOUND = 'ERROR: The system was unable to find the specified registry key or value.';

/**
 * What this machine cannot host: Windows and its registry. reg.exe is
 * simulated, case-insensitive like the registry, and its export files are
 * real UTF-16 files in the agent's directory as reg.exe writes them.
 */
class FakeRegistry {
  /** Key path (short hive form) → its values. */
  readonly keys = new Map<string, Record<string, string>>();
  /** Subtrees `reg delete` cannot remove (their permissions deny it): it removes the rest and fails. */
  readonly denied = new Set<string>();
  /** Keys something recreates as soon as they are deleted. */
  readonly recreated = new Set<string>();
  /** `reg import` reports success but writes nothing. */
  importIgnored = false;
  readonly runner = new RecordingRunner((command, args) => this.answer(command, args));

  private subtree(key: string): string[] {
    const k = key.toLowerCase();
    return [...this.keys.keys()].filter((path) => path.toLowerCase() === k || path.toLowerCase().startsWith(`${k}\\`)).sort();
  }

  private answer(command: string, args: readonly string[]) {
    if (command !== 'reg') return failed(1, `'${command}' is not recognized as an internal or external command`);
    const [verb, target = '', ...rest] = args;
    switch (verb) {
      case 'query':
        return this.subtree(target).length ? ok(`\r\n${target}\r\n`) : failed(1, NOT_FOUND);
      case 'export': {
        const keys = this.subtree(target);
        if (!keys.length) return failed(1, NOT_FOUND);
        if (rest[1] !== '/y' || rest.length !== 2) return failed(1, 'ERROR: Invalid syntax.');
        const body = keys.map((key) => {
          const [hive = '', ...names] = key.split('\\');
          const values = Object.entries(this.keys.get(key)!).map(([name, value]) => `"${name}"="${value}"\r\n`).join('');
          return `[${[LONG_HIVE[hive], ...names].join('\\')}]\r\n${values}\r\n`;
        }).join('');
        writeFileSync(rest[0]!, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`Windows Registry Editor Version 5.00\r\n\r\n${body}`, 'utf16le')]));
        return ok('The operation completed successfully.\r\n');
      }
      case 'delete': {
        if (rest[0] !== '/f') return failed(1, 'ERROR: Invalid syntax.');
        const keys = this.subtree(target);
        if (!keys.length) return failed(1, NOT_FOUND);
        const kept = keys.filter((key) => [...this.denied].some((denied) => key.toLowerCase().startsWith(denied.toLowerCase())));
        for (const key of keys) if (!kept.includes(key)) this.keys.delete(key);
        if (kept.length) return failed(1, 'ERROR: Access is denied.');
        if (this.recreated.has(target)) this.keys.set(target, { Payload: 'back again' });
        return ok('The operation completed successfully.\r\n');
      }
      case 'import': {
        if (!existsSync(target)) return failed(1, 'ERROR: Error opening the file. There may be a disk or file system error.');
        if (this.importIgnored) return ok('The operation completed successfully.\r\n');
        const text = readFileSync(target).subarray(2).toString('utf16le');
        let current: Record<string, string> | undefined;
        for (const line of text.split('\r\n')) {
          const header = /^\[(.+)\]$/.exec(line);
          if (header) {
            const [hive = '', ...names] = header[1]!.split('\\');
            const short = Object.keys(LONG_HIVE).find((candidate) => LONG_HIVE[candidate] === hive) ?? hive;
            const key = [short, ...names].join('\\');
            current = this.keys.get(key) ?? {};
            this.keys.set(key, current);
          }
          const value = /^"(.*)"="(.*)"$/.exec(line);
          if (value && current) current[value[1]!] = value[2]!;
        }
        return ok('The operation completed successfully.\r\n');
      }
      default:
        return failed(1, 'ERROR: Invalid syntax.');
    }
  }
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('remove_registry_key and restore_registry_key (Windows)', () => {
  let agentDir: string;
  let registry: FakeRegistry;
  const actionId = '6f1c8e2a-0b3d-4c5e-9f70-8a9b0c1d2e3f';
  const exportFile = () => join(agentDir, 'registry', `${actionId}.reg`);

  beforeEach(() => {
    agentDir = mkdtempSync(join(tmpdir(), 'quell-registry-'));
    registry = new FakeRegistry();
    registry.keys.set('HKLM\\SOFTWARE\\Microsoft', { Version: '10' });
    registry.keys.set('HKLM\\SOFTWARE\\Evil Corp', { Path: 'C:\\\\Users\\\\Public\\\\evil.exe' });
    registry.keys.set('HKLM\\SOFTWARE\\Evil Corp\\Persistence', { Run: 'evil.exe --silent' });
  });
  afterEach(() => rmSync(agentDir, { recursive: true, force: true }));

  const remove = (name: string, path?: string) =>
    removeRegistryKey(executionContext(registry.runner, { type: 'remove_registry_key', entity: { name, ...(path ? { path } : {}) }, actionId }, { agentDir }));
  const restore = (priorSnapshot: unknown) =>
    restoreRegistryKey(executionContext(registry.runner, { type: 'restore_registry_key', entity: { name: 'HKLM\\SOFTWARE\\Evil Corp' }, undoOf: actionId }, { agentDir, priorSnapshot }));
  const original = () => structuredClone(Object.fromEntries(registry.keys));

  it('exports the key, deletes it and verifies it is gone; restore imports the export and verifies the key is back', async () => {
    const before = original();
    const result = await remove('HKLM\\SOFTWARE\\Evil Corp');
    expect(registry.runner.calls.map(({ command, args }) => [command, ...args])).toEqual([
      ['reg', 'query', 'HKLM\\SOFTWARE\\Evil Corp'],
      ['reg', 'export', 'HKLM\\SOFTWARE\\Evil Corp', exportFile(), '/y'],
      ['reg', 'delete', 'HKLM\\SOFTWARE\\Evil Corp', '/f'],
      ['reg', 'query', 'HKLM\\SOFTWARE\\Evil Corp'],
    ]);
    registry.runner.take();
    const bytes = readFileSync(exportFile());
    expect(result.snapshot).toEqual({ key: 'HKLM\\SOFTWARE\\Evil Corp', exportFile: exportFile(), sha256: sha256(bytes), size: bytes.length, content: bytes.toString('base64') });
    expect([...registry.keys.keys()]).toEqual(['HKLM\\SOFTWARE\\Microsoft']);

    const restored = await restore(result.snapshot);
    expect(registry.runner.calls.map(({ command, args }) => [command, ...args])).toEqual([
      ['reg', 'query', 'HKLM\\SOFTWARE\\Evil Corp'],
      ['reg', 'import', exportFile()],
      ['reg', 'query', 'HKLM\\SOFTWARE\\Evil Corp'],
    ]);
    expect(Object.fromEntries(registry.keys)).toEqual(before);
    expect(restored.output).toBe(`Restored HKLM\\SOFTWARE\\Evil Corp from ${exportFile()} (SHA-256 ${sha256(bytes)})`);
    expect(existsSync(exportFile())).toBe(false);
  });

  it('takes the key from the entity path when there is one, and accepts long hive names in any case', async () => {
    await remove('Evil Corp persistence', 'hkey_local_machine\\SOFTWARE\\Evil Corp');
    expect(registry.runner.take()[0]).toBe('reg query HKLM\\SOFTWARE\\Evil Corp');
    expect(registryKeyPath('HKEY_CURRENT_USER\\Software\\Classes\\ms-settings')).toBe('HKCU\\Software\\Classes\\ms-settings');
    expect(registryKeyPath('HKCR\\evilfile')).toBe('HKCR\\evilfile');
    expect(registryKeyPath('HKU\\S-1-5-21-1004\\Software\\Evil')).toBe('HKU\\S-1-5-21-1004\\Software\\Evil');
    expect(registryKeyPath('HKEY_CURRENT_CONFIG\\Software\\Fonts/odd')).toBe('HKCC\\Software\\Fonts/odd');
  });

  it('restore writes the export back from the snapshot when the file was lost', async () => {
    const before = original();
    const result = await remove('HKLM\\SOFTWARE\\Evil Corp');
    unlinkSync(exportFile());
    await restore(result.snapshot);
    expect(Object.fromEntries(registry.keys)).toEqual(before);
  });

  it('restore refuses an export that was altered and is not kept in the snapshot, running nothing', async () => {
    const result = await remove('HKLM\\SOFTWARE\\Evil Corp');
    registry.runner.take();
    writeFileSync(exportFile(), 'Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Evil Corp]\r\n"Run"="worse.exe"\r\n');
    const large: Record<string, unknown> = { ...(result.snapshot as Record<string, unknown>) };
    delete large.content;
    await expect(restore(large)).rejects.toThrow('missing or altered and too large to have been kept in the snapshot');
    expect(registry.runner.take()).toEqual([]);
  });

  it('restore refuses to merge into a key that was created again with other content', async () => {
    const result = await remove('HKLM\\SOFTWARE\\Evil Corp');
    registry.keys.set('HKLM\\SOFTWARE\\Evil Corp', { Path: 'C:\\\\other.exe' });
    registry.runner.take();
    await expect(restore(result.snapshot)).rejects.toThrow('HKLM\\SOFTWARE\\Evil Corp exists again with different content: it was not overwritten');
    expect(registry.runner.take()).toEqual([
      'reg query HKLM\\SOFTWARE\\Evil Corp',
      `reg export HKLM\\SOFTWARE\\Evil Corp ${exportFile()}.current /y`,
    ]);
    expect(registry.keys.get('HKLM\\SOFTWARE\\Evil Corp')).toEqual({ Path: 'C:\\\\other.exe' });
  });

  it('restore of a key that is already back exactly as exported succeeds without importing', async () => {
    const before = original();
    const result = await remove('HKLM\\SOFTWARE\\Evil Corp');
    for (const [key, values] of Object.entries(before)) registry.keys.set(key, values);
    registry.runner.take();
    expect((await restore(result.snapshot)).output).toBe('The identical key is already at HKLM\\SOFTWARE\\Evil Corp');
    expect(registry.runner.take()).not.toContain(`reg import ${exportFile()}`);
  });

  it('a deletion denied part-way imports the export back and fails the action', async () => {
    const before = original();
    registry.denied.add('HKLM\\SOFTWARE\\Evil Corp\\Persistence');
    const error = await remove('HKLM\\SOFTWARE\\Evil Corp').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as Error).message).toBe(`reg delete HKLM\\SOFTWARE\\Evil Corp /f failed (1): ERROR: Access is denied.; the key was imported back from ${exportFile()}`);
    expect(registry.runner.take()).toEqual([
      'reg query HKLM\\SOFTWARE\\Evil Corp',
      `reg export HKLM\\SOFTWARE\\Evil Corp ${exportFile()} /y`,
      'reg delete HKLM\\SOFTWARE\\Evil Corp /f',
      `reg import ${exportFile()}`,
    ]);
    expect(Object.fromEntries(registry.keys)).toEqual(before);
  });

  it('a key that is back right after deletion fails verification', async () => {
    registry.recreated.add('HKLM\\SOFTWARE\\Evil Corp');
    await expect(remove('HKLM\\SOFTWARE\\Evil Corp')).rejects.toThrow(/^HKLM\\SOFTWARE\\Evil Corp still exists after deleting it; the key was imported back/);
    expect(registry.runner.take().slice(-2)).toEqual(['reg query HKLM\\SOFTWARE\\Evil Corp', `reg import ${exportFile()}`]);
  });

  it('restore fails verification when the key is not there after the import', async () => {
    const result = await remove('HKLM\\SOFTWARE\\Evil Corp');
    registry.importIgnored = true;
    await expect(restore(result.snapshot)).rejects.toThrow(`HKLM\\SOFTWARE\\Evil Corp does not exist after importing ${exportFile()}`);
  });

  it('a key that does not exist is refused after one query', async () => {
    await expect(remove('HKLM\\SOFTWARE\\Ghost\\Key')).rejects.toThrow('there is no registry key HKLM\\SOFTWARE\\Ghost\\Key on this device');
    expect(registry.runner.take()).toEqual(['reg query HKLM\\SOFTWARE\\Ghost\\Key']);
  });

  it.each([
    'HKLM', 'HKLM\\SOFTWARE', 'HKEY_LOCAL_MACHINE\\SYSTEM', 'HKU\\S-1-5-18', 'HKCU\\Software', 'HKCR', 'HKXX\\Software\\Evil',
    'SOFTWARE\\Evil', '\\\\fileserver\\HKLM\\SOFTWARE\\Evil', 'HKLM\\SOFTWARE\\\\Evil', 'HKLM\\SOFTWARE\\Evil\\', '/y',
    'HKLM\\SOFTWARE\\Ev\u0000il', 'HKLM\\SOFTWARE\\Evil\r\nHKLM\\SYSTEM', 'HKLM\\SOFTWARE\\Ev\u007fil', 'HKLM\\SOFTWARE\\Ev\u0085il',
    `HKLM\\SOFTWARE\\${'a'.repeat(256)}`, `HKLM\\SOFTWARE\\${'a\\'.repeat(600)}a`, '',
  ])('refuses the hostile or unsafe key %j before running anything', async (key) => {
    await expect(remove(key)).rejects.toThrow(/not a registry key this agent removes/);
    await expect(restore({ key, exportFile: exportFile(), sha256: '0'.repeat(64), size: 1 })).rejects.toThrow(/not a registry key this agent removes/);
    expect(registry.runner.calls).toEqual([]);
    expect(readdirSync(agentDir)).toEqual([]);
  });

  it('restore refuses a snapshot naming a file outside the agent\'s directory, and runs nothing without a snapshot', async () => {
    await expect(restore(undefined)).rejects.toThrow('no registry record');
    await expect(restore({ key: 'HKLM\\SOFTWARE\\Evil Corp', exportFile: join(agentDir, '..', 'x.reg'), sha256: '0'.repeat(64), size: 1 })).rejects.toThrow('outside the agent\'s directory');
    expect(registry.runner.calls).toEqual([]);
  });
});
