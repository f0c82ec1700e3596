import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { TEST_DIALECT } from '../test/helper.ts';
import { createTestDatabase } from '../test/store.ts';
import { migrate } from './migrate.ts';
import { openStore } from './store.ts';

describe(`migrations (${TEST_DIALECT})`, () => {
  it('0023 puts action parameters stored before they were typed in today\'s form, once, and leaves typed ones as they are', async () => {
    const database = await createTestDatabase();
    const store = openStore(database.location);
    try {
      await migrate(store, { through: 22 });
      const device = '00000000-0000-7000-8000-000000000023';
      await sql`INSERT INTO devices (id, name, platform, group_id, created_at) VALUES (${device}, 'old-host', 'linux', NULL, 0)`.execute(store.db);
      const stored: Record<string, [type: string, parameters: object]> = {
        'a-1': ['isolate_device', { isolation: 'selective', allow: '10.0.0.53, 10.0.0.10' }],
        'a-2': ['stop_service', { mask: 'true', removeUnitFile: 'false' }],
        'a-3': ['collect_evidence', { paths: '/tmp/a b\n/tmp/c' }],
        'a-4': ['isolate_device', { isolation: 'selective', allow: ['10.0.0.1'] }],
        'a-5': ['contain_user', {}],
      };
      for (const [id, [type, parameters]] of Object.entries(stored)) {
        await sql`INSERT INTO actions (id, type, status, entity_type, entity_name, parameters, device_id, device_name, source, requested_by, requested_at, updated_at)
          VALUES (${id}, ${type}, 'completed', 'device', 'x', ${JSON.stringify(parameters)}, ${device}, 'old-host', 'manual', 'ann', 0, 0)`.execute(store.db);
      }
      expect(await migrate(store)).toContain(23);
      const rows = await store.db.selectFrom('actions').select(['id', 'parameters']).orderBy('id').execute();
      expect(Object.fromEntries(rows.map((row) => [row.id, JSON.parse(row.parameters)]))).toEqual({
        'a-1': { isolation: 'selective', allow: ['10.0.0.53', '10.0.0.10'] },
        'a-2': { mask: true, removeUnitFile: false },
        'a-3': { paths: ['/tmp/a b', '/tmp/c'] },
        'a-4': { isolation: 'selective', allow: ['10.0.0.1'] },
        'a-5': {},
      });
      expect(await migrate(store)).toEqual([]);
    } finally {
      await store.close();
      await database.drop();
    }
  });
});
