import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

const DAY = 86_400_000;

/**
 * A pending action that expires is rejected by the system, as Defender
 * counts it (DESIGN.md §2): it keeps its own status, `expired`, and
 * everywhere rejections are counted — History's Rejected filter, the
 * summary, the CSV export — it is counted with them.
 */
describe(`expired actions count as rejected (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const reader = () => ctx().users.security_reader;

  it('keeps its own status, and History\'s Rejected filter, the summary counts and the CSV export count it as rejected', async () => {
    const deviceId = await ctx().createDevice({ name: 'expiry-host' });
    const rejected = await ctx().createAction({ deviceId, type: 'isolate_device' });
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/reject', { ids: [rejected], comment: 'not this one' })).statusCode).toBe(200);
    const expired = await ctx().createAction({ deviceId, type: 'stop_service', entity: { name: 'cups.service' } });
    const completed = await ctx().createAction({ deviceId, type: 'restrict_code_execution', status: 'queued' });
    await ctx().complete(completed);
    ctx().clock.advance(8 * DAY);
    expect(await ctx().services.actions.expireDue(systemActor())).toBe(1);

    const history = async (query: string) => {
      const response = await ctx().request(reader(), 'GET', `/api/actions?view=history&deviceId=${deviceId}&withTotal=true${query}`);
      expect(response.statusCode, response.body).toBe(200);
      return response.json() as { items: Array<{ id: string; status: string }>; total: number };
    };
    const asRejected = await history('&status=rejected');
    expect(asRejected.items.map((a) => [a.id, a.status]).sort()).toEqual([[rejected, 'rejected'], [expired, 'expired']].sort());
    expect(asRejected.total).toBe(2);
    expect((await history('&status=expired')).items.map((a) => a.id)).toEqual([expired]);
    expect((await history('&status=completed')).items.map((a) => a.id)).toEqual([completed]);
    expect((await history('')).total).toBe(3);

    const activity = (await ctx().request(reader(), 'GET', '/api/actions/activity')).json();
    expect(activity).toMatchObject({ rejectedLast30Days: 2, expiredLast30Days: 1 });
    // The chart keeps the statuses apart.
    expect(activity.byStatusPerDay.filter((d: { status: string }) => d.status === 'expired' || d.status === 'rejected').map((d: { status: string; count: number }) => [d.status, d.count]).sort())
      .toEqual([['expired', 1], ['rejected', 1]]);

    const csv = await ctx().request(reader(), 'GET', `/api/actions/export.csv?deviceId=${deviceId}&status=rejected`);
    expect(csv.statusCode).toBe(200);
    const [header, ...rows] = csv.body.trim().split('\r\n').map((line) => line.split(','));
    const column = (name: string) => header!.indexOf(name);
    expect(rows.map((r) => [r[column('id')], r[column('status')], r[column('countsAs')]]).sort()).toEqual([[rejected, 'rejected', 'rejected'], [expired, 'expired', 'rejected']].sort());
    const everything = (await ctx().request(reader(), 'GET', `/api/actions/export.csv?deviceId=${deviceId}`)).body;
    expect(everything.trim().split('\r\n').slice(1).map((line) => line.split(',')).map((r) => r.at(-1)).sort()).toEqual(['completed', 'rejected', 'rejected']);
  });

  it('the activity counts only the rejections and expiries of the last 30 days', async () => {
    // Proposed 8 days ago; counted by the day they were proposed. (Asked of the service: the test users' tokens last 30 days.)
    ctx().clock.advance(20 * DAY);
    expect(await ctx().services.actions.activity(reader().actor)).toMatchObject({ rejectedLast30Days: 2, expiredLast30Days: 1 });
    ctx().clock.advance(3 * DAY);
    expect(await ctx().services.actions.activity(reader().actor)).toMatchObject({ rejectedLast30Days: 0, expiredLast30Days: 0 });
  });
});
