import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

const run = promisify(execFile);
const QUELL = new URL('../../../../cli/bin/quell.js', import.meta.url).pathname;

describe(`audit log chain (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  async function verifyCli(): Promise<{ code: number; stdout: string }> {
    try {
      const { stdout } = await run(process.execPath, [QUELL, 'audit', 'verify'], { env: { ...process.env, ...ctx().db.env } });
      return { code: 0, stdout };
    } catch (error) {
      const failed = error as { code: number; stdout: string };
      return { code: failed.code, stdout: failed.stdout };
    }
  }

  it('records who did what from where, with before and after', async () => {
    const { request, users, app } = ctx();
    const id = await ctx().createAction();
    await app.inject({ method: 'POST', url: '/api/actions/reject', remoteAddress: '192.0.2.7', headers: ctx().as(users.security_admin), payload: { ids: [id], comment: 'benign' } });
    const entries = (await request(users.security_reader, 'GET', `/api/audit?targetId=${id}`)).json().items;
    expect(entries.map((e: { kind: string }) => e.kind)).toEqual(['action.reject', 'action.create']);
    expect(entries[0]).toMatchObject({ actor: 'security-admin', sourceIp: '192.0.2.7', targetType: 'action', before: { status: 'pending_approval' }, after: { status: 'rejected', comment: 'benign' } });
  });

  it('detects an edited entry', async () => {
    const { store, services } = ctx();
    expect((await verifyCli()).code).toBe(0);
    const victim = await store.db.selectFrom('audit_log').select(['seq', 'actor']).where('kind', '=', 'action.reject').executeTakeFirstOrThrow();
    await store.db.updateTable('audit_log').set({ actor: 'someone-else' }).where('seq', '=', victim.seq).execute();
    const result = await services.audit.verify();
    expect(result).toMatchObject({ ok: false, firstBadSeq: victim.seq });
    const cli = await verifyCli();
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain(`BROKEN at entry ${victim.seq}`);
    await store.db.updateTable('audit_log').set({ actor: victim.actor }).where('seq', '=', victim.seq).execute();
    expect((await services.audit.verify()).ok).toBe(true);
  });

  it('detects a deleted entry in the middle and at the end', async () => {
    const { store, services } = ctx();
    const rows = await store.db.selectFrom('audit_log').selectAll().orderBy('seq').execute();
    const middle = rows[Math.floor(rows.length / 2)]!;
    await store.db.deleteFrom('audit_log').where('seq', '=', middle.seq).execute();
    expect(await services.audit.verify()).toMatchObject({ ok: false, firstBadSeq: middle.seq });
    await store.db.insertInto('audit_log').values(middle).execute();
    expect((await services.audit.verify()).ok).toBe(true);

    const last = rows[rows.length - 1]!;
    await store.db.deleteFrom('audit_log').where('seq', '=', last.seq).execute();
    expect(await services.audit.verify()).toMatchObject({ ok: false, firstBadSeq: last.seq });
    expect((await verifyCli()).code).toBe(1);
    await store.db.insertInto('audit_log').values(last).execute();
    expect((await verifyCli()).code).toBe(0);
  });

  it('is readable by readers through GET /api/audit/verify', async () => {
    const res = await ctx().request(ctx().users.security_reader, 'GET', '/api/audit/verify');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, firstBadSeq: null });
    expect(res.json().checked).toBeGreaterThan(10);
  });
});
