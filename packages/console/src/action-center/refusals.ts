import { ACTION_CATALOGUE, type Action, type ActionType } from '@quell/contracts';
import { statusLabel, typeLabel } from '../format.ts';

/** Why this action cannot be undone now, or null when it can; `roleRefusal` says what the role may not undo. */
export function undoRefusal(action: Action, roleRefusal: (type: ActionType) => string | null): string | null {
  if (!ACTION_CATALOGUE[action.type].undoType) return `${typeLabel(action.type)} cannot be undone`;
  if (action.undoneBy) return 'An undo of this action exists already';
  if (action.status !== 'completed') return `Only completed actions can be undone; this one is ${statusLabel(action.status).toLowerCase()}`;
  return roleRefusal(action.type);
}
