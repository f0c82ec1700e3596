import { describe, expect, it } from 'vitest';
import { ACTION_CATALOGUE, ACTION_TYPES } from './catalogue.ts';
import { canonicalParameters, parameterProblem } from './parameter-check.ts';
import { ACTION_PARAMETER_SCHEMAS, MAC_ADDRESS, upgradeParameters } from './parameters.ts';

describe('action parameters', () => {
  it.each([
    ['isolate_device', { isolation: 'selective', allow: ['10.0.0.53', '10.9.0.0/16', '2001:db8::1'] }],
    ['contain_device', { mac: '52:54:00:12:34:56' }],
    ['contain_device', { mac: '52-54-00-12-34-56' }],
    ['contain_user', { allowSystemAccount: true, overrideGuard: false }],
    ['stop_service', { mask: true, removeUnitFile: false }],
    ['remove_persistence', { line: 'ssh-ed25519 AAAA attacker@x' }],
    ['run_antivirus_scan', { scan: 'full', roots: ['/srv', '/home'], blockSha256: ['AB'.repeat(32)] }],
    ['collect_evidence', { paths: ['/tmp/a b', 'C:\\Users\\x.exe'] }],
    ['release_isolation', { isolation: 'selective', allow: ['10.0.0.1'] }],
    ['restore_service', { mask: true }],
    ['restrict_code_execution', {}],
  ] as const)('%s takes %o', (type, parameters) => {
    expect(parameterProblem(type, parameters)).toBeNull();
  });

  it.each([
    ['run_antivirus_scan', { scan: 'deep' }, 'parameters.scan must be quick or full'],
    ['run_antivirus_scan', { roots: '/tmp,/var' }, 'parameters.roots must be a list of 1 to 64 paths'],
    ['run_antivirus_scan', { roots: ['/tmp', 7] }, 'parameters.roots must be a list of 1 to 64 paths'],
    ['run_antivirus_scan', { blockSha256: ['deadbeef'] }, 'parameters.blockSha256 must be a list of at most 1000 SHA-256 hashes'],
    ['isolate_device', { allow: '10.0.0.1,10.0.0.2' }, 'parameters.allow must be a list of at most 64 IP addresses or CIDR ranges'],
    ['isolate_device', { allow: ['10.0.0.1', '1.2.3.4; flush ruleset'] }, 'parameters.allow: not an IP address or CIDR range: "1.2.3.4; flush ruleset"'],
    ['isolate_device', { isolation: 'partial' }, 'parameters.isolation must be full or selective'],
    ['contain_device', { mac: '52:54-00:12:34:56' }, 'parameters.mac must be a MAC address such as 52:54:00:12:34:56 or 52-54-00-12-34-56'],
    ['contain_device', { mac: '52:54:00:12:34' }, 'parameters.mac must be a MAC address such as 52:54:00:12:34:56 or 52-54-00-12-34-56'],
    ['stop_service', { mask: 'true' }, 'parameters.mask must be true or false'],
    ['stop_service', { surprise: 'x' }, 'stop_service takes no parameter "surprise" (it takes mask, removeUnitFile, overrideGuard)'],
    ['restrict_code_execution', { isolation: 'full' }, 'restrict_code_execution takes no parameter "isolation"'],
    ['restore_file', { overrideGuard: true }, 'restore_file takes no parameter "overrideGuard"'],
    ['remove_scheduled_task', { line: 'a\nb' }, 'parameters.line must be the text of one line (1 to 4096 characters, no line break)'],
    ['collect_evidence', { paths: Array.from({ length: 101 }, (_, i) => `/f${i}`) }, 'parameters.paths must be a list of at most 100 paths'],
    ['collect_evidence', { paths: Array.from({ length: 100 }, (_, i) => `/${String(i).padStart(1400, 'x')}`) }, 'parameters.paths: more than 131072 characters together'],
    ['isolate_device', ['full'], 'parameters is not an object'],
    ['isolate_device', null, 'parameters is not an object'],
  ] as const)('%s refuses %o: %s', (type, parameters, problem) => {
    expect(parameterProblem(type, parameters)).toBe(problem);
  });

  it('gives an undo the parameters of its original, without the guard override', () => {
    for (const type of ACTION_TYPES.filter((t) => ACTION_CATALOGUE[t].undoType !== null)) {
      const undo = ACTION_CATALOGUE[type].undoType!;
      const own = Object.keys(ACTION_PARAMETER_SCHEMAS[type].properties).filter((name) => name !== 'overrideGuard');
      expect(Object.keys(ACTION_PARAMETER_SCHEMAS[undo].properties).sort()).toEqual(expect.arrayContaining(own.sort()));
      expect(ACTION_PARAMETER_SCHEMAS[undo].properties).not.toHaveProperty('overrideGuard');
    }
  });

  it('stores MAC addresses and allowed addresses in one spelling', () => {
    expect(MAC_ADDRESS.test('52-54-00-AA-bb-cc')).toBe(true);
    expect(canonicalParameters({ mac: '52-54-00-AA-bb-cc' })).toEqual({ mac: '52:54:00:aa:bb:cc' });
    expect(canonicalParameters({ isolation: 'selective', allow: ['10.1.2.3/16', '2001:0db8::0001'] })).toEqual({ isolation: 'selective', allow: ['10.1.0.0/16', '2001:db8::1'] });
  });

  it('reads parameters written as strings before they were typed', () => {
    expect(upgradeParameters({ isolation: 'selective', allow: '10.0.0.53, 10.0.0.10' })).toEqual({ isolation: 'selective', allow: ['10.0.0.53', '10.0.0.10'] });
    expect(upgradeParameters({ roots: '/srv,/home', blockSha256: ` ${'AB'.repeat(32)} , ${'cd'.repeat(32)}` })).toEqual({ roots: ['/srv', '/home'], blockSha256: ['AB'.repeat(32), 'cd'.repeat(32)] });
    expect(upgradeParameters({ paths: '/tmp/a b\n/tmp/c' })).toEqual({ paths: ['/tmp/a b', '/tmp/c'] });
    expect(upgradeParameters({ mask: 'true', removeUnitFile: 'false', allowSystemAccount: 'true', line: 'true' })).toEqual({ mask: true, removeUnitFile: false, allowSystemAccount: true, line: 'true' });
    expect(upgradeParameters({ allow: ['10.0.0.1'], mask: true })).toEqual({ allow: ['10.0.0.1'], mask: true });
    expect(upgradeParameters('x')).toBe('x');
  });
});
