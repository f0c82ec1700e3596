import { type Permission, type Role, type User, roleHas } from '@quell/contracts';
import { QuellError } from './errors.ts';

/**
 * Who is doing something. Every service method takes one and checks it
 * itself: a route's check alone is never the only one.
 */
export interface Actor {
  kind: 'user' | 'token' | 'system';
  userId: string | null;
  /** What the History and audit show, e.g. "alice" or "Automation". */
  name: string;
  role: Role;
  /** For tokens, the scopes granted; a token can never exceed its owner's role. */
  scopes: readonly Permission[] | null;
  /** Device groups the actor may see; null means every group. */
  groupIds: readonly string[] | null;
  sourceIp: string | null;
}

/** A signed-in user's session, as the auth module resolves it: who, and what the console needs to act for them. */
export interface SessionIdentity { actor: Actor; user: User; csrfToken: string; permissions: Permission[] }

export function systemActor(name = 'System'): Actor {
  return { kind: 'system', userId: null, name, role: 'global_admin', scopes: null, groupIds: null, sourceIp: null };
}

export function can(actor: Actor, permission: Permission): boolean {
  return roleHas(actor.role, permission) && (actor.scopes === null || actor.scopes.includes(permission));
}

export function requirePermission(actor: Actor, permission: Permission): void {
  if (!roleHas(actor.role, permission)) throw new QuellError('forbidden', `Your role (${actor.role}) does not allow ${permission}`);
  if (actor.scopes !== null && !actor.scopes.includes(permission)) throw new QuellError('token_scope_missing', `This API token lacks the ${permission} scope`);
}

/** True when a device in `groupId` is inside the actor's scope. */
export function inScope(actor: Actor, groupId: string | null): boolean {
  return actor.groupIds === null || (groupId !== null && actor.groupIds.includes(groupId));
}
