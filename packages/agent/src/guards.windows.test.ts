import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordingRunner, executionContext, failed } from './executors/test/recording-runner.ts';
import { removeRegistryKey } from './executors/registry-key.windows.ts';
import { SYSTEM_KEYS, guardsFor } from './guards.windows.ts';

const OVERRIDABLE = /A Global Administrator can override with parameters\.overrideGuard$/;
const NEVER = /is guarded \(the Quell agent's own key\): removing it would lose this device to Quell\. This is never done, not even with parameters\.overrideGuard; to remove the agent, offboard the device/;

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const guards = (overrideGuard?: boolean) => guardsFor(executionContext(new RecordingRunner(() => failed(1, 'no command may run here')), {
  type: 'remove_registry_key', entity: { name: 'x' }, parameters: overrideGuard === undefined ? {} : { overrideGuard },
}));

describe('guarded registry keys (Windows)', () => {
  it.each(SYSTEM_KEYS.map(({ key, what }) => [key, what]))('refuses %s (%s) unless a Global Administrator overrides', (key, what) => {
    expect(guards().registryKey(key)).toMatch(new RegExp(`^${escape(key)} is guarded \\(${escape(what)}\\): removing it .*${OVERRIDABLE.source}`));
    expect(guards(true).registryKey(key)).toBeNull();
  });

  it.each([
    ['HKLM\\SAM\\SAM\\Domains\\Account\\Users', 'inside HKLM\\SAM'],
    ['HKLM\\SECURITY\\Policy\\Secrets', 'inside HKLM\\SECURITY'],
    ['HKLM\\SYSTEM\\CurrentControlSet\\Control', 'which holds HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa'],
    ['hklm\\system\\currentcontrolset\\control\\lsa', 'the Local Security Authority'],
    ['HKLM\\SOFTWARE\\Microsoft', 'which holds HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon'],
    ['HKLM\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon', 'the logon configuration'],
  ])('refuses %s: removing it removes or changes a guarded key (%s)', (key, why) => {
    expect(guards().registryKey(key)).toContain(why);
    expect(guards().registryKey(key)).toMatch(OVERRIDABLE);
    expect(guards(true).registryKey(key)).toBeNull();
  });

  it.each([
    'HKLM\\SOFTWARE\\Quell',
    'HKLM\\SOFTWARE\\Quell\\Agent',
    'HKLM\\SOFTWARE\\WOW6432Node\\Quell',
    'HKLM\\SYSTEM\\CurrentControlSet\\Services\\quell-agent',
    'HKLM\\SYSTEM\\ControlSet002\\Services\\Quell-Agent\\Parameters',
    'HKLM\\SYSTEM\\CurrentControlSet\\Services',
    'HKLM\\SYSTEM\\ControlSet001\\Services',
    'HKLM\\SYSTEM\\CurrentControlSet',
  ])('refuses the agent\'s own key %s (or a key holding it), override or not', (key) => {
    expect(guards().registryKey(key)).toMatch(NEVER);
    expect(guards(true).registryKey(key)).toMatch(NEVER);
  });

  it.each([
    'HKLM\\SOFTWARE\\Evil Corp',
    'HKLM\\SYSTEM\\CurrentControlSet\\Services\\EvilSvc',
    'HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\Notify\\evil',
    'HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\EvilPackage',
    'HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run',
    'HKLM\\SOFTWARE\\Quellish',
  ])('leaves %s alone: malware plants its persistence there', (key) => {
    expect(guards().registryKey(key)).toBeNull();
  });
});

describe('remove_registry_key refuses guarded keys before reg.exe runs', () => {
  const agentDir = mkdtempSync(join(tmpdir(), 'quell-guards-windows-'));
  afterAll(() => rmSync(agentDir, { recursive: true, force: true }));

  it.each([
    ['HKLM\\SAM\\SAM', {}, OVERRIDABLE],
    ['HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Lsa', {}, OVERRIDABLE],
    ['HKLM\\SYSTEM\\CurrentControlSet\\Services', { overrideGuard: true }, NEVER],
    ['HKLM\\SYSTEM\\CurrentControlSet\\Services\\quell-agent', {}, NEVER],
    ['HKLM\\SOFTWARE\\Quell', { overrideGuard: true }, NEVER],
  ] as const)('%s %o', async (name, parameters, reason) => {
    const runner = new RecordingRunner((command) => failed(1, `${command} must not run`));
    await expect(removeRegistryKey(executionContext(runner, { type: 'remove_registry_key', entity: { name }, parameters }, { agentDir }))).rejects.toThrow(reason);
    expect(runner.calls).toEqual([]);
  });
});
