import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { systemActor } from './actor.ts';
import { TEST_DIALECT, useTestApp } from './test/helper.ts';

const run = promisify(execFile);
const QUELL = new URL('../../cli/bin/quell.js', import.meta.url).pathname;

describe(`Action center end to end over HTTP (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  it('create → bulk approve → delivered → completed → undo → undone, with the right roles', async () => {
    const { users, request } = ctx();
    const sha256 = 'ab'.repeat(32);
    const ids: string[] = [];
    for (const name of ['/tmp/a.elf', '/tmp/b.elf']) {
      const deviceId = await ctx().createDevice();
      const res = await request(users.security_operator, 'POST', '/api/actions', {
        type: 'quarantine_file', deviceId, entity: { name, sha256, path: name }, source: 'automated_investigation', status: 'pending_approval', comment: 'malware found',
      });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({ status: 'pending_approval', entityType: 'file', decidedBy: null });
      ids.push(res.json().id);
    }

    const pending = await request(users.security_reader, 'GET', '/api/actions?view=pending&withTotal=true');
    expect(pending.statusCode).toBe(200);
    expect(pending.json().total).toBe(2);

    expect((await request(users.security_reader, 'POST', '/api/actions/approve', { ids, comment: 'ok' })).statusCode).toBe(403);

    const approved = await request(users.security_operator, 'POST', '/api/actions/approve', { ids, comment: 'confirmed malicious' });
    expect(approved.statusCode).toBe(200);
    expect(approved.json().items.map((a: { status: string }) => a.status)).toEqual(['queued', 'queued']);
    expect(approved.json().items[0]).toMatchObject({ decidedBy: 'security-operator', decisionComment: 'confirmed malicious' });

    const again = await request(users.security_admin, 'POST', '/api/actions/approve', { ids: [ids[0]] });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'action_not_pending', actions: [{ id: ids[0], status: 'queued', decidedBy: 'security-operator' }] });

    for (const id of ids) await ctx().complete(id);
    const done = await request(users.security_reader, 'GET', `/api/actions/${ids[0]}`);
    expect(done.json().action.status).toBe('completed');
    expect(done.json().timeline.map((e: { event: string }) => e.event)).toEqual(['create', 'approve', 'deliver', 'complete']);

    // Undoing a file quarantine needs a Security Administrator.
    const byOperator = await request(users.security_operator, 'POST', '/api/actions/undo', { ids: [ids[0]], comment: 'false positive' });
    expect(byOperator.statusCode).toBe(403);
    expect(byOperator.json().code).toBe('undo_role_required');

    const instances = await request(users.security_reader, 'GET', `/api/actions/${ids[0]}/instances`);
    expect(instances.json().instances.map((a: { id: string }) => a.id)).toEqual([ids[1]]);

    const undo = await request(users.security_admin, 'POST', `/api/actions/${ids[0]}/instances/undo`, { comment: 'false positive' });
    expect(undo.statusCode).toBe(200);
    const undoActions = undo.json().items as Array<{ id: string; type: string; status: string; undoOf: string }>;
    expect(undoActions.map((a) => [a.type, a.status, a.undoOf])).toEqual([['restore_file', 'queued', ids[0]], ['restore_file', 'queued', ids[1]]]);

    const twice = await request(users.security_admin, 'POST', '/api/actions/undo', { ids: [ids[0]] });
    expect(twice.statusCode).toBe(409);
    expect(twice.json().code).toBe('undo_in_progress');

    for (const a of undoActions) await ctx().complete(a.id);
    for (const id of ids) {
      const original = (await request(users.security_reader, 'GET', `/api/actions/${id}`)).json();
      expect(original.action.status).toBe('undone');
      expect(original.action.undoneBy).toBe(undoActions.find((a) => a.undoOf === id)!.id);
    }
  });

  it('create → reject: only the deciding roles may reject, and the decision is final', async () => {
    const { users, request } = ctx();
    const id = await ctx().createAction({ type: 'stop_service', entity: { name: 'cryptominer.service' } });
    expect((await request(users.security_reader, 'POST', '/api/actions/reject', { ids: [id] })).statusCode).toBe(403);
    const rejected = await request(users.security_admin, 'POST', '/api/actions/reject', { ids: [id], comment: 'needed service' });
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json().items[0]).toMatchObject({ status: 'rejected', decidedBy: 'security-admin', decisionComment: 'needed service' });
    const late = await request(users.global_admin, 'POST', '/api/actions/approve', { ids: [id] });
    expect(late.statusCode).toBe(409);
    expect(late.json().actions[0]).toMatchObject({ status: 'rejected', decidedBy: 'security-admin' });
    const history = await request(users.security_reader, 'GET', '/api/actions?view=history&status=rejected');
    expect(history.json().items.map((a: { id: string }) => a.id)).toContain(id);
  });

  it('create → expire: the durable job expires actions past their deadline, recorded as a system decision', async () => {
    const { users, request, clock, services } = ctx();
    const id = await ctx().createAction({ type: 'disable_driver', entity: { name: 'rootkit.ko' } });
    const before = await services.actions.expireDue(systemActor());
    expect(before).toBe(0);
    clock.advance(168 * 3_600_000 + 1);
    expect(await services.actions.expireDue(systemActor())).toBeGreaterThanOrEqual(1);
    const expired = (await request(users.security_reader, 'GET', `/api/actions/${id}`)).json();
    expect(expired.action).toMatchObject({ status: 'expired', decidedBy: 'System' });
    const approve = await request(users.security_operator, 'POST', '/api/actions/approve', { ids: [id] });
    expect(approve.statusCode).toBe(409);
  });

  it('unauthenticated calls get 401, and the audit log verifies with `quell audit verify`', async () => {
    const { request, db } = ctx();
    expect((await request(null, 'GET', '/api/actions?view=pending')).statusCode).toBe(401);
    const audit = await request(ctx().users.security_reader, 'GET', '/api/audit?limit=500');
    const kinds = new Set(audit.json().items.map((e: { kind: string }) => e.kind));
    for (const kind of ['action.create', 'action.approve', 'action.reject', 'action.expire', 'action.deliver', 'action.complete', 'action.undo_requested', 'action.undo_complete']) {
      expect(kinds).toContain(kind);
    }
    const { stdout } = await run(process.execPath, [QUELL, 'audit', 'verify'], { env: { ...process.env, ...db.env } });
    expect(stdout).toMatch(/Audit log intact: \d+ entries verified/);
  });
});
