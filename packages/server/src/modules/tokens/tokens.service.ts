import { createHash, randomBytes } from 'node:crypto';
import { type CreateTokenBody, type Token, roleAtLeast, roleHas } from '@quell/contracts';
import { type Actor, requirePermission } from '../../actor.ts';
import type { ApiTokensTable } from '../../db/schema.ts';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import { presentToken } from './tokens.presenter.ts';
import type { TokensRepository } from './tokens.repository.ts';

/** API tokens for scripts and SOAR: scoped, expiring, shown once, stored as a hash; a token acts as its owner. */
export function createTokensService(deps: { store: Store; repo: TokensRepository; audit: AuditService; clock: Clock; ids: Ids }) {
  const { store, repo, audit, clock, ids } = deps;

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
        await repo.insert(trx, row);
        await audit.record(trx, actor, { kind: 'token.create', targetType: 'token', targetId: row.id, after: presentToken(row) });
      });
      return { token: presentToken(row), secret: `qt_${row.id}_${secret}` };
    },

    /** Administrators see every token; the secret is never shown again. */
    async list(actor: Actor): Promise<Token[]> {
      requirePermission(actor, 'tokens:manage');
      return (await repo.list(store.db, 1000)).map(presentToken);
    },

    async revoke(actor: Actor, id: string): Promise<Token> {
      requirePermission(actor, 'tokens:manage');
      return store.transaction(async (trx) => {
        const row = await repo.findById(trx, id);
        if (!row) throw new QuellError('token_not_found');
        if (row.revoked_at !== null) return presentToken(row);
        const revoked = { ...row, revoked_at: clock.now() };
        await repo.revoke(trx, id, revoked.revoked_at);
        await audit.record(trx, actor, { kind: 'token.revoke', targetType: 'token', targetId: id, before: presentToken(row), after: presentToken(revoked) });
        return presentToken(revoked);
      });
    },
  };
}
export type TokensService = ReturnType<typeof createTokensService>;
