import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { TEST_DIALECT } from '../test/helper.ts';
import { createTestDatabase } from '../test/store.ts';
import { systemActor } from '../actor.ts';
import { chainHash } from '../modules/audit/audit.service.ts';
import { createServices } from '../services.ts';
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

  it('0025 records the audit chain\'s head where none was: the last entry, or the start of an empty chain; the chain goes on from it', async () => {
    for (const entries of [0, 3]) {
      const database = await createTestDatabase();
      const store = openStore(database.location);
      try {
        await migrate(store, { through: 24 });
        // Entries as a version that did not record the head wrote them.
        let prev = '0'.repeat(64);
        for (let seq = 1; seq <= entries; seq++) {
          const row = { seq, at: seq, actor: 'System', source_ip: null, kind: 'settings.update', target_type: 'settings', target_id: null, before_json: null, after_json: `{"seq":${seq}}`, prev_hash: prev };
          prev = chainHash(row);
          await store.db.insertInto('audit_log').values({ ...row, hash: prev, group_ids: null, actor_user_id: null }).execute();
        }
        const services = createServices({ store });
        expect(await migrate(store)).toContain(25);
        const head = await store.db.selectFrom('settings').select('value').where('key', '=', 'audit_head').executeTakeFirstOrThrow();
        const last = await store.db.selectFrom('audit_log').select(['seq', 'hash']).orderBy('seq', 'desc').executeTakeFirst();
        expect(JSON.parse(head.value)).toEqual(last ?? { seq: 0, hash: '0'.repeat(64) });
        await services.audit.recordAlone(systemActor(), { kind: 'settings.update', targetType: 'settings', targetId: null, after: { after: 'migration' } });
        expect(await services.audit.verify()).toMatchObject({ ok: true, checked: entries + 1 });
      } finally {
        await store.close();
        await database.drop();
      }
    }
  });
});
