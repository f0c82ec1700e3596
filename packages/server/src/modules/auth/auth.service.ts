import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { verify } from '@node-rs/argon2';
import { type LoginBody, type Permission, ROLE_PERMISSIONS, type Role, type User } from '@quell/contracts';
import type { Actor, SessionIdentity } from '../../actor.ts';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import { presentUser, hashPassword } from '../users/users.service.ts';
import type { UsersRepository } from '../users/users.repository.ts';
import type { TokensRepository } from '../tokens/tokens.repository.ts';
import { createLoginLimiter } from './login-limiter.ts';
import type { SessionsRepository } from './sessions.repository.ts';

export const SESSION_TTL_MS = 12 * 3_600_000;
const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

/**
 * Sign-in, sessions and bearer tokens, each resolved to an Actor. Session ids
 * and token secrets are random 256-bit values stored only as SHA-256 hashes.
 */
export function createAuthService(deps: { store: Store; users: UsersRepository; sessions: SessionsRepository; tokens: TokensRepository; audit: AuditService; clock: Clock }) {
  const { store, users, sessions, tokens, audit, clock } = deps;
  const limiter = createLoginLimiter({ now: () => clock.now() });
  // Verifying against a real hash when the user does not exist keeps the timing the same.
  const dummyHash = hashPassword(randomBytes(16).toString('hex'));

  async function actorFor(userId: string, sourceIp: string | null, scopes: Permission[] | null, kind: 'user' | 'token'): Promise<{ actor: Actor; user: User } | null> {
    const found = await users.findWithGroups(store.db, userId);
    if (!found || found.user.disabled === 1) return null;
    const { user: row, groupIds } = found;
    const user = presentUser(row, groupIds);
    return {
      user,
      actor: { kind, userId, name: row.username, role: row.role as Role, scopes, groupIds: groupIds.length === 0 ? null : groupIds, sourceIp },
    };
  }

  return {
    async login(body: LoginBody, sourceIp: string | null): Promise<{ sessionId: string; identity: SessionIdentity }> {
      const wait = limiter.retryAfter(body.username, sourceIp);
      if (wait > 0) throw new QuellError('too_many_login_attempts', `Too many failed sign-ins; try again in ${wait} s`, { retryAfter: wait });
      const row = await users.findByUsername(store.db, body.username);
      const ok = await verify(row?.password_hash ?? (await dummyHash), body.password).catch(() => false);
      const visitor: Actor = { kind: 'user', userId: row?.id ?? null, name: body.username, role: 'security_reader', scopes: [], groupIds: [], sourceIp };
      if (!row || !ok || row.disabled === 1) {
        limiter.fail(body.username, sourceIp);
        await audit.recordAlone(visitor, { kind: 'auth.login_failed', targetType: 'user', targetId: row?.id ?? null });
        throw new QuellError('invalid_credentials');
      }
      limiter.succeed(body.username, sourceIp);
      const sessionId = randomBytes(32).toString('base64url');
      const csrfToken = randomBytes(32).toString('base64url');
      const now = clock.now();
      await store.transaction(async (trx) => {
        await sessions.insert(trx, { id_hash: sha256(sessionId), user_id: row.id, csrf_token: csrfToken, created_at: now, expires_at: now + SESSION_TTL_MS });
        await sessions.deleteExpired(trx, now);
        await audit.record(trx, visitor, { kind: 'auth.login', targetType: 'user', targetId: row.id });
      });
      const resolved = (await actorFor(row.id, sourceIp, null, 'user'))!;
      return { sessionId, identity: { ...resolved, csrfToken, permissions: [...ROLE_PERMISSIONS[row.role as Role]] } };
    },

    async session(sessionId: string, sourceIp: string | null): Promise<SessionIdentity | null> {
      const session = await sessions.findByHash(store.db, sha256(sessionId));
      if (!session || session.expires_at <= clock.now()) return null;
      const resolved = await actorFor(session.user_id, sourceIp, null, 'user');
      if (!resolved) return null;
      return { ...resolved, csrfToken: session.csrf_token, permissions: [...ROLE_PERMISSIONS[resolved.actor.role]] };
    },

    async logout(sessionId: string, actor: Actor): Promise<void> {
      await store.transaction(async (trx) => {
        await sessions.delete(trx, sha256(sessionId));
        await audit.record(trx, actor, { kind: 'auth.logout', targetType: 'user', targetId: actor.userId });
      });
    },

    /** Bearer tokens look like `qt_<token id>_<secret>`. */
    async bearer(token: string, sourceIp: string | null): Promise<Actor | null> {
      const match = /^qt_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/.exec(token);
      if (!match) return null;
      const row = await tokens.findById(store.db, match[1]!);
      if (!row || row.revoked_at !== null || row.expires_at <= clock.now()) return null;
      const expected = Buffer.from(row.secret_hash, 'hex');
      const given = Buffer.from(sha256(match[2]!), 'hex');
      if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
      const resolved = await actorFor(row.user_id, sourceIp, JSON.parse(row.scopes) as Permission[], 'token');
      return resolved?.actor ?? null;
    },
  };
}
export type AuthService = ReturnType<typeof createAuthService>;
