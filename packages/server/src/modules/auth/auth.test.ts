import { describe, expect, it } from 'vitest';
import { PASSWORD, TEST_DIALECT, useTestApp } from '../../test/helper.ts';

function sessionCookie(setCookie: string | string[] | undefined): string {
  const header = Array.isArray(setCookie) ? setCookie[0]! : setCookie!;
  expect(header).toMatch(/HttpOnly/);
  expect(header).toMatch(/SameSite=Strict/);
  return header.split(';')[0]!;
}

describe(`sign-in, sessions and API tokens (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  it('signs in with a cookie session; writes need the CSRF token; sign-out ends the session', async () => {
    const { app, users } = ctx();
    const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'security-operator', password: PASSWORD } });
    expect(login.statusCode).toBe(200);
    const cookie = sessionCookie(login.headers['set-cookie']);
    const { csrfToken, user, permissions } = login.json();
    expect(user).toMatchObject({ username: 'security-operator', role: 'security_operator' });
    expect(permissions).toContain('actions:decide');

    expect((await app.inject({ method: 'GET', url: '/api/actions?view=pending', headers: { cookie } })).statusCode).toBe(200);
    const id = await ctx().createAction();
    const noCsrf = await app.inject({ method: 'POST', url: '/api/actions/approve', headers: { cookie }, payload: { ids: [id] } });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.json().code).toBe('csrf_token_invalid');
    const withCsrf = await app.inject({ method: 'POST', url: '/api/actions/approve', headers: { cookie, 'x-csrf-token': csrfToken }, payload: { ids: [id] } });
    expect(withCsrf.statusCode).toBe(200);
    expect(withCsrf.json().items[0].decidedBy).toBe(users.security_operator.username);

    const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', headers: { cookie, 'x-csrf-token': csrfToken } });
    expect(logout.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/actions?view=pending', headers: { cookie } })).statusCode).toBe(401);
  });

  it('answers a wrong password and an unknown user alike: 401 invalid_credentials, each recorded as a failed sign-in', async () => {
    const { app } = ctx();
    const attempt = (username: string) => app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: '10.1.0.1', payload: { username, password: 'wrong password!' } });
    const [unknown, wrong] = [await attempt('nobody'), await attempt('security-reader')];
    for (const res of [unknown, wrong]) {
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'invalid_credentials', detail: 'Wrong user name or password' });
    }
    const audit = await ctx().request(ctx().users.global_admin, 'GET', '/api/audit?kind=auth.login_failed');
    expect(audit.json().items.length).toBeGreaterThanOrEqual(2);
  });

  it('limits API tokens to their scopes, and refuses expired, revoked and malformed tokens', async () => {
    const { request, users, app, clock } = ctx();
    const created = await request(users.security_admin, 'POST', '/api/tokens', { name: 'soar', scopes: ['actions:read'], expiresInDays: 1 });
    expect(created.statusCode).toBe(201);
    const secret = created.json().secret as string;
    expect(JSON.stringify((await request(users.security_admin, 'GET', '/api/tokens')).json())).not.toContain(secret.slice(-43));
    const bearer = (token: string, method: 'GET' | 'POST', url: string, payload?: object) => app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });

    expect((await bearer(secret, 'GET', '/api/actions?view=pending')).statusCode).toBe(200);
    const id = await ctx().createAction();
    const scoped = await bearer(secret, 'POST', '/api/actions/approve', { ids: [id] });
    expect(scoped.statusCode).toBe(403);
    expect(scoped.json().code).toBe('token_scope_missing');
    expect((await bearer(secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A'), 'GET', '/api/actions?view=pending')).statusCode).toBe(401);
    expect((await bearer('not-a-token', 'GET', '/api/actions?view=pending')).statusCode).toBe(401);

    const beyond = await request(users.security_operator, 'POST', '/api/tokens', { name: 'x', scopes: ['users:manage'], expiresInDays: 1 });
    expect(beyond.statusCode).toBe(403);

    clock.advance(86_400_000 + 1);
    expect((await bearer(secret, 'GET', '/api/actions?view=pending')).statusCode).toBe(401);
    const fresh = (await request(users.security_admin, 'POST', '/api/tokens', { name: 'soar2', scopes: ['actions:read'], expiresInDays: 1 })).json();
    expect((await request(users.security_admin, 'DELETE', `/api/tokens/${fresh.token.id}`)).json().revokedAt).not.toBeNull();
    expect((await bearer(fresh.secret, 'GET', '/api/actions?view=pending')).statusCode).toBe(401);
  });

  it('lets administrators manage users up to their own role; disabling a user ends their access', async () => {
    const { request, users, app } = ctx();
    const tooHigh = await request(users.security_admin, 'POST', '/api/users', { username: 'boss', role: 'global_admin', password: 'a long enough password' });
    expect(tooHigh.statusCode).toBe(403);
    expect(tooHigh.json().code).toBe('role_too_high');
    expect((await request(users.security_operator, 'POST', '/api/users', { username: 'x', role: 'security_reader', password: 'a long enough password' })).statusCode).toBe(403);
    const created = await request(users.security_admin, 'POST', '/api/users', { username: 'temp-analyst', role: 'security_reader', password: 'a long enough password' });
    expect(created.statusCode).toBe(201);
    expect(created.json()).not.toHaveProperty('passwordHash');
    expect((await request(users.security_admin, 'POST', '/api/users', { username: 'temp-analyst', role: 'security_reader', password: 'a long enough password' })).json().code).toBe('username_taken');
    const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'temp-analyst', password: 'a long enough password' } });
    const cookie = sessionCookie(login.headers['set-cookie']);
    expect((await request(users.security_admin, 'PATCH', `/api/users/${created.json().id}`, { disabled: true })).json().disabled).toBe(true);
    expect((await app.inject({ method: 'GET', url: '/api/actions?view=pending', headers: { cookie } })).statusCode).toBe(401);
    const again = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'temp-analyst', password: 'a long enough password' } });
    expect(again.statusCode).toBe(401);
  });
});
