import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { TEST_DIALECT, createUser, useTestApp } from '../../test/helper.ts';

describe(`users (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  it('an administrator scoped to device groups lists unscoped users and those within their groups, none that names another group', async () => {
    const group = async (name: string, rank: number) => (await ctx().services.devices.createGroup(systemActor(), { name, rank, automationLevel: 'full' })).id;
    const [mine, other] = [await group('users-mine', 1), await group('users-other', 2)];
    const admin = await createUser(ctx().services, 'security_admin', 'scoped-admin', [mine]);
    await createUser(ctx().services, 'security_reader', 'reader-of-mine', [mine]);
    await createUser(ctx().services, 'security_reader', 'reader-of-both', [mine, other]);
    await createUser(ctx().services, 'security_reader', 'reader-of-other', [other]);

    const listed = await ctx().request(admin, 'GET', '/api/users');
    expect(listed.statusCode).toBe(200);
    const names = listed.json().items.map((u: { username: string }) => u.username);
    expect(names).toEqual(expect.arrayContaining(['scoped-admin', 'reader-of-mine', 'global-admin', 'security-reader']));
    expect(names).not.toContain('reader-of-both');
    expect(names).not.toContain('reader-of-other');
    expect(listed.body).not.toContain(other);
    const everyone = (await ctx().request(ctx().users.global_admin, 'GET', '/api/users')).json().items.map((u: { username: string }) => u.username);
    expect(everyone).toEqual(expect.arrayContaining(['reader-of-both', 'reader-of-other']));
  });
});
