import type { Settings, UpdateSettingsBody } from '@quell/contracts';
import { type Actor, requirePermission } from '../../actor.ts';
import type { Db, Store } from '../../db/store.ts';
import type { AuditService } from '../audit/audit.service.ts';

const KEY = 'settings';
const CACHE_MS = 1000;

/** Product settings changed at run time; the configuration gives their defaults. */
export function createSettingsService(deps: { store: Store; audit: AuditService; defaults: Settings }) {
  const { store, audit, defaults } = deps;

  // Read on every proposal and decision, changed rarely: kept for a second. A change made here is
  // seen at once; one made by another replica within CACHE_MS.
  let cached: { value: Settings; at: number } | null = null;

  async function read(db: Db): Promise<Settings> {
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.value;
    const row = await db.selectFrom('settings').select('value').where('key', '=', KEY).executeTakeFirst();
    const value = row ? { ...defaults, ...(JSON.parse(row.value) as Partial<Settings>) } : defaults;
    cached = { value, at: Date.now() };
    return value;
  }

  return {
    read,
    async get(actor: Actor): Promise<Settings> {
      requirePermission(actor, 'actions:read');
      return read(store.db);
    },
    async update(actor: Actor, patch: UpdateSettingsBody): Promise<Settings> {
      requirePermission(actor, 'settings:manage');
      const updated = await store.transaction(async (trx) => {
        cached = null;
        const before = await read(trx);
        const after: Settings = { ...before, ...patch };
        const value = JSON.stringify(after);
        await trx.insertInto('settings').values({ key: KEY, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
        await audit.record(trx, actor, { kind: 'settings.update', targetType: 'settings', targetId: null, before, after });
        return after;
      });
      cached = null;
      return updated;
    },
  };
}
export type SettingsService = ReturnType<typeof createSettingsService>;
