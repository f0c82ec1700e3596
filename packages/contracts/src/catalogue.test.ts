import { describe, expect, it } from 'vitest';
import { ACTION_CATALOGUE, ACTION_TYPES, CAPABILITY_MATRIX } from './catalogue.ts';

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

  it('supports registry actions on Windows only', () => {
    expect(CAPABILITY_MATRIX.remove_registry_key).toEqual({ linux: 'unsupported', windows: 'supported', macos: 'unsupported' });
  });
});
