import { createHash, randomBytes } from 'node:crypto';
import { type CreateTokenBody, type Permission, type Token, roleAtLeast, roleHas } from '@quell/contracts';
import { type Actor, requirePermission } from '../../actor.ts';
import type { ApiTokensTable } from '../../db/schema.ts';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';

export function presentToken(row: ApiTokensTable): Token {
  return {
    id: row.id,
    name: row.name,
    userId: row.user_id,
    scopes: JSON.parse(row.scopes) as Permission[],
    createdAt: new Date(row.created_at).toISOString(),
    expiresAt: new Date(row.expires_at).toISOString(),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at).toISOString(),
  };
}

/** API tokens for scripts and SOAR: scoped, expiring, shown once, stored as a hash; a token acts as its owner. */
export function createTokensService(deps: { store: Store; audit: AuditService; clock: Clock; ids: Ids }) {
  const { store, audit, clock, ids } = deps;

  return {
    /**
     * Creates a token acting as `owner` (by default the caller). Its scopes
     * can never exceed what the owner holds; making one for someone else
     * needs authority over that user's role.
     */
    async create(actor: Actor, body: CreateTokenBody, owner: Pick<Actor, 'userId' | 'role' | 'scopes'> = actor): Promise<{ token: Token; secret: string }> {
      requirePermission(actor, 'tokens:manage');
      if (owner.userId === null) throw new QuellError('forbidden', 'Tokens belong to a user; create them as one (quell token create --user NAME)');
      if (owner.userId !== actor.userId) {
        requirePermission(actor, 'users:manage');
        if (!roleAtLeast(actor.role, owner.role)) throw new QuellError('role_too_high', `Your role (${actor.role}) cannot create tokens for ${owner.role} users`);
      }
      const beyond = body.scopes.filter((scope) => !roleHas(owner.role, scope) || (owner.scopes !== null && !owner.scopes.includes(scope)) || (actor.scopes !== null && !actor.scopes.includes(scope)));
      if (beyond.length > 0) throw new QuellError('forbidden', `You cannot grant scopes you do not hold: ${beyond.join(', ')}`);
      const secret = randomBytes(32).toString('base64url');
      const now = clock.now();
      const row: ApiTokensTable = {
        id: ids.next(), name: body.name, user_id: owner.userId, secret_hash: createHash('sha256').update(secret).digest('hex'),
        scopes: JSON.stringify([...new Set(body.scopes)]), created_at: now, expires_at: now + body.expiresInDays * 86_400_000, revoked_at: null,
      };
      await store.transaction(async (trx) => {
        await trx.insertInto('api_tokens').values(row).execute();
        await audit.record(trx, actor, { kind: 'token.create', targetType: 'token', targetId: row.id, after: presentToken(row) });
      });
      return { token: presentToken(row), secret: `qt_${row.id}_${secret}` };
    },

    /** Administrators see every token; the secret is never shown again. */
    async list(actor: Actor): Promise<Token[]> {
      requirePermission(actor, 'tokens:manage');
      return (await store.db.selectFrom('api_tokens').selectAll().orderBy('created_at', 'desc').limit(1000).execute()).map(presentToken);
    },

    async revoke(actor: Actor, id: string): Promise<Token> {
      requirePermission(actor, 'tokens:manage');
      return store.transaction(async (trx) => {
        const row = await trx.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
        if (!row) throw new QuellError('token_not_found');
        if (row.revoked_at !== null) return presentToken(row);
        const revoked = { ...row, revoked_at: clock.now() };
        await trx.updateTable('api_tokens').set({ revoked_at: revoked.revoked_at }).where('id', '=', id).execute();
        await audit.record(trx, actor, { kind: 'token.revoke', targetType: 'token', targetId: id, before: presentToken(row), after: presentToken(revoked) });
        return presentToken(revoked);
      });
    },
  };
}
export type TokensService = ReturnType<typeof createTokensService>;
