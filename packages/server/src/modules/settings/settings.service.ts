import type { Settings, UpdateSettingsBody } from '@quell/contracts';
import { type Actor, requirePermission } from '../../actor.ts';
import type { Db, Store } from '../../db/store.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { SettingsRepository } from './settings.repository.ts';

const CACHE_MS = 1000;

/** Product settings changed at run time; the configuration gives their defaults. */
export function createSettingsService(deps: { store: Store; repo: SettingsRepository; audit: AuditService; defaults: Settings }) {
  const { store, repo, audit, defaults } = deps;

  // Read on every proposal and decision, changed rarely: kept for a second. A change made here is
  // seen at once; one made by another replica within CACHE_MS.
  let cached: { value: Settings; at: number } | null = null;

  async function read(db: Db): Promise<Settings> {
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.value;
    const stored = await repo.read(db);
    const value = stored === undefined ? defaults : { ...defaults, ...(JSON.parse(stored) as Partial<Settings>) };
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
        await repo.write(trx, JSON.stringify(after));
        await audit.record(trx, actor, { kind: 'settings.update', targetType: 'settings', targetId: null, before, after });
        return after;
      });
      cached = null;
      return updated;
    },
  };
}
export type SettingsService = ReturnType<typeof createSettingsService>;
