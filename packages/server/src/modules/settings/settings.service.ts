import type { Settings, UpdateSettingsBody } from '@quell/contracts';
import { type Actor, requirePermission } from '../../actor.ts';
import type { Db, Store } from '../../db/store.ts';
import type { AuditService } from '../audit/audit.service.ts';

const KEY = 'settings';

/** Product settings changed at run time; the configuration gives their defaults. */
export function createSettingsService(deps: { store: Store; audit: AuditService; defaults: Settings }) {
  const { store, audit, defaults } = deps;

  async function read(db: Db): Promise<Settings> {
    const row = await db.selectFrom('settings').select('value').where('key', '=', KEY).executeTakeFirst();
    return row ? { ...defaults, ...(JSON.parse(row.value) as Partial<Settings>) } : defaults;
  }

  return {
    read,
    async get(actor: Actor): Promise<Settings> {
      requirePermission(actor, 'actions:read');
      return read(store.db);
    },
    async update(actor: Actor, patch: UpdateSettingsBody): Promise<Settings> {
      requirePermission(actor, 'settings:manage');
      return store.transaction(async (trx) => {
        const before = await read(trx);
        const after: Settings = { ...before, ...patch };
        const value = JSON.stringify(after);
        await trx.insertInto('settings').values({ key: KEY, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
        await audit.record(trx, actor, { kind: 'settings.update', targetType: 'settings', targetId: null, before, after });
        return after;
      });
    },
  };
}
export type SettingsService = ReturnType<typeof createSettingsService>;
