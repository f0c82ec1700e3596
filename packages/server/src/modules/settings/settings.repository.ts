import type { Db } from '../../db/store.ts';

/** Settings are one JSON document under one key. */
const KEY = 'settings';

export function createSettingsRepository() {
  return {
    /** The stored document, or undefined when nothing was ever changed from the defaults. */
    async read(db: Db): Promise<string | undefined> {
      return (await db.selectFrom('settings').select('value').where('key', '=', KEY).executeTakeFirst())?.value;
    },
    async write(db: Db, value: string): Promise<void> {
      await db.insertInto('settings').values({ key: KEY, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
    },
  };
}
export type SettingsRepository = ReturnType<typeof createSettingsRepository>;
