import { describe, expect, it } from 'vitest';
import { ACTION_CATALOGUE, ACTION_TYPES, CAPABILITY_MATRIX, FLEET_ACTION_TYPES, entityKey } from './catalogue.ts';
import { ENFORCED_EFFECT_ACTION_TYPES } from './schemas/agent.ts';

describe('action catalogue', () => {
  it.each(ACTION_TYPES)('%s: its undo type is an undo-only type on the same entity and platforms', (type) => {
    const def = ACTION_CATALOGUE[type];
    if (def.undoType === null) {
      expect(def.undoRole).toBeNull();
      return;
    }
    const undo = ACTION_CATALOGUE[def.undoType];
    expect(undo.isUndo).toBe(true);
    expect(undo.entityType).toBe(def.entityType);
    expect(def.undoRole).not.toBeNull();
    expect(CAPABILITY_MATRIX[def.undoType]).toEqual(CAPABILITY_MATRIX[type]);
  });

  it('lets only administrators undo file quarantine and only global administrators release a user', () => {
    expect(ACTION_CATALOGUE.quarantine_file.undoRole).toBe('security_admin');
    expect(ACTION_CATALOGUE.stop_and_quarantine_file.undoRole).toBe('security_admin');
    expect(ACTION_CATALOGUE.contain_user.undoRole).toBe('global_admin');
  });

  it.each([
    ['quarantine_file', { name: 'a', path: '/tmp/a', sha256: 'AB'.repeat(32) }, `sha256:${'ab'.repeat(32)}`],
    ['stop_and_quarantine_file', { name: 'b', path: '/opt/b', sha256: 'ab'.repeat(32) }, `sha256:${'ab'.repeat(32)}`],
    ['quarantine_file', { name: 'a', path: '/tmp/a' }, 'path:/tmp/a'],
    ['isolate_device', { name: 'web-1' }, 'device'],
    ['contain_user', { name: 'mallory' }, 'name:mallory'],
    ['remove_scheduled_task', { name: 'evil', path: '/etc/cron.d/evil' }, 'path:/etc/cron.d/evil|name:evil'],
    ['restore_file', { name: 'a', path: '/tmp/a', sha256: 'ab'.repeat(32) }, null],
    ['run_antivirus_scan', { name: 'web-1' }, null],
    ['collect_evidence', { name: 'web-1' }, null],
  ] as const)('%s on %o is the same action as another with the key %s', (type, entity, key) => {
    expect(entityKey(type, entity)).toBe(key);
  });

  it('tells two lines of one file apart: removing each is its own action', () => {
    const crontab = { name: 'crontab', path: '/etc/crontab' };
    const first = entityKey('remove_scheduled_task', crontab, { line: '* * * * * root /tmp/a' });
    expect(first).toBe('path:/etc/crontab|name:crontab|line:* * * * * root /tmp/a');
    expect(entityKey('remove_scheduled_task', crontab, { line: '* * * * * root /tmp/b' })).not.toBe(first);
    const keys = { name: 'authorized_keys', path: '/root/.ssh/authorized_keys' };
    expect(entityKey('remove_persistence', keys, { line: 'ssh-rsa AAAA a@x' })).not.toBe(entityKey('remove_persistence', keys, { line: 'ssh-rsa BBBB b@x' }));
    expect(entityKey('remove_persistence', { name: 'x.sh', path: '/etc/profile.d/x.sh' })).toBe('path:/etc/profile.d/x.sh|name:x.sh');
  });

  it('says a lasting effect for exactly the types whose effect the agent keeps true (containment is the fleet\'s), each undoable', () => {
    const watched = new Set(Object.values(ENFORCED_EFFECT_ACTION_TYPES).flat().filter((type) => !FLEET_ACTION_TYPES.includes(type)));
    expect(new Set(ACTION_TYPES.filter((type) => ACTION_CATALOGUE[type].lasting !== null))).toEqual(watched);
    for (const type of ACTION_TYPES.filter((t) => ACTION_CATALOGUE[t].deviceState !== null)) {
      expect(ACTION_CATALOGUE[type].lasting).not.toBeNull();
      expect(ACTION_CATALOGUE[type].undoType).not.toBeNull();
    }
  });

  it('supports registry actions on Windows only', () => {
    expect(CAPABILITY_MATRIX.remove_registry_key).toEqual({ linux: 'unsupported', windows: 'supported', macos: 'unsupported' });
  });
});
