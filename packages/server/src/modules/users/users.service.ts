import { randomBytes } from 'node:crypto';
import { hash } from '@node-rs/argon2';
import { type CreateUserBody, type Role, type UpdateUserBody, type User, roleAtLeast } from '@quell/contracts';
import { type Actor, inScope, requirePermission, systemActor } from '../../actor.ts';
import type { UsersTable } from '../../db/schema.ts';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { UsersRepository } from './users.repository.ts';

/** argon2id with the OWASP-recommended minimum cost (19 MiB, 2 passes). */
export const hashPassword = (password: string): Promise<string> => hash(password, { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 });

export function presentUser(row: UsersTable, groupIds: string[]): User {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    role: row.role as Role,
    disabled: row.disabled === 1,
    deviceGroupIds: groupIds,
    createdAt: new Date(row.created_at).toISOString(),
  };
}

export function createUsersService(deps: { store: Store; repo: UsersRepository; audit: AuditService; clock: Clock; ids: Ids }) {
  const { store, repo, audit, clock, ids } = deps;

  async function checkGroups(db: Parameters<UsersRepository['countGroups']>[0], groupIds: readonly string[]): Promise<void> {
    if (new Set(groupIds).size !== groupIds.length) throw new QuellError('duplicate_ids', 'A device group appears twice');
    if ((await repo.countGroups(db, groupIds)) !== groupIds.length) throw new QuellError('device_group_not_found', 'One of deviceGroupIds does not exist');
  }

  /** A user may only manage users at or below their own role, and only grant roles up to their own. */
  function requireAuthority(actor: Actor, role: Role): void {
    if (!roleAtLeast(actor.role, role)) throw new QuellError('role_too_high', `Your role (${actor.role}) cannot manage ${role} users`);
  }

  return {
    async create(actor: Actor, body: CreateUserBody): Promise<User> {
      requirePermission(actor, 'users:manage');
      requireAuthority(actor, body.role);
      const passwordHash = await hashPassword(body.password);
      return store.transaction(async (trx) => {
        if (await repo.findByUsername(trx, body.username)) throw new QuellError('username_taken', `The user name ${body.username} is taken`);
        const groupIds = body.deviceGroupIds ?? [];
        await checkGroups(trx, groupIds);
        const row: UsersTable = {
          id: ids.next(), username: body.username, display_name: body.displayName ?? body.username, role: body.role,
          password_hash: passwordHash, disabled: 0, created_at: clock.now(),
        };
        await repo.insert(trx, row);
        await repo.setGroupIds(trx, row.id, groupIds);
        const user = presentUser(row, groupIds);
        await audit.record(trx, actor, { kind: 'user.create', targetType: 'user', targetId: row.id, after: user });
        return user;
      });
    },

    /** Every user; an administrator scoped to device groups sees unscoped users and those scoped within their groups, nothing that names another group. */
    async list(actor: Actor): Promise<User[]> {
      requirePermission(actor, 'users:manage');
      const rows = await repo.list(store.db);
      const users = await Promise.all(rows.map(async (row) => presentUser(row, await repo.groupIds(store.db, row.id))));
      return users.filter((user) => user.deviceGroupIds.every((id) => inScope(actor, id)));
    },

    async update(actor: Actor, id: string, body: UpdateUserBody): Promise<User> {
      requirePermission(actor, 'users:manage');
      return store.transaction(async (trx) => {
        const row = await repo.findById(trx, id);
        if (!row) throw new QuellError('user_not_found');
        requireAuthority(actor, row.role as Role);
        if (body.role !== undefined) requireAuthority(actor, body.role);
        const before = presentUser(row, await repo.groupIds(trx, id));
        const patch = { ...(body.role !== undefined ? { role: body.role } : {}), ...(body.disabled !== undefined ? { disabled: body.disabled ? 1 : 0 } : {}) };
        if (Object.keys(patch).length > 0) await repo.update(trx, id, patch);
        if (body.deviceGroupIds !== undefined) {
          await checkGroups(trx, body.deviceGroupIds);
          await repo.setGroupIds(trx, id, body.deviceGroupIds);
        }
        // A changed role, scope or a disabled account must not live on in open sessions.
        await repo.deleteSessions(trx, id);
        const after = presentUser({ ...row, ...patch }, await repo.groupIds(trx, id));
        await audit.record(trx, actor, { kind: 'user.update', targetType: 'user', targetId: id, before, after });
        return after;
      });
    },

    async findByUsername(username: string): Promise<User | null> {
      const row = await repo.findByUsername(store.db, username);
      return row ? presentUser(row, await repo.groupIds(store.db, row.id)) : null;
    },

    /**
     * On first start, with no user at all, creates `admin` as Global
     * Administrator. Returns the password when it was generated, to print once.
     */
    async bootstrapAdmin(password: string | null): Promise<{ created: boolean; generatedPassword: string | null }> {
      if ((await repo.count(store.db)) > 0) return { created: false, generatedPassword: null };
      const generated = password === null ? randomBytes(18).toString('base64url') : null;
      const passwordHash = await hashPassword(password ?? generated!);
      const created = await store.transaction(async (trx) => {
        if ((await repo.count(trx)) > 0) return false;
        const row: UsersTable = { id: ids.next(), username: 'admin', display_name: 'Administrator', role: 'global_admin', password_hash: passwordHash, disabled: 0, created_at: clock.now() };
        await repo.insert(trx, row);
        await audit.record(trx, systemActor(), { kind: 'user.create', targetType: 'user', targetId: row.id, after: presentUser(row, []) });
        return true;
      });
      return { created, generatedPassword: created ? generated : null };
    },
  };
}
export type UsersService = ReturnType<typeof createUsersService>;
