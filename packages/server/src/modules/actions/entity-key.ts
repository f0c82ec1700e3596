import { createHash } from 'node:crypto';
import { type ActionType, entityKey } from '@quell/contracts';

/**
 * Longer keys are stored as their digest: an index entry has a bounded size
 * (about 2.7 kB on PostgreSQL), and a path and a name from an alert can be
 * longer than that. 512 characters are at most 2,048 bytes.
 */
const MAX_STORED_KEY_CHARS = 512;

/** The entity key as the actions table stores it (see entityKey in contracts). */
export function storedEntityKey(type: ActionType, entity: Parameters<typeof entityKey>[1], parameters?: object): string | null {
  const key = entityKey(type, entity, parameters);
  return key === null || key.length <= MAX_STORED_KEY_CHARS ? key : `digest:${createHash('sha256').update(key).digest('hex')}`;
}
