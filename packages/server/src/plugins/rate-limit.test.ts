import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../actor.ts';
import { PASSWORD, TEST_DIALECT, createUser, useTestApp } from '../test/helper.ts';

const LIMIT = 5;

/** A counted 2xx/4xx that was let through, with where the caller stands. */
function expectCounted(res: LightMyRequestResponse, remaining: number): void {
  expect(res.statusCode, res.body).not.toBe(429);
  expect(res.headers['ratelimit-policy']).toBe(`${LIMIT};w=60`);
  expect(res.headers['ratelimit-limit']).toBe(String(LIMIT));
  expect(res.headers['ratelimit-remaining']).toBe(String(remaining));
  expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThan(0);
  expect(Number(res.headers['ratelimit-reset'])).toBeLessThanOrEqual(60);
}

function expectLimited(res: LightMyRequestResponse): void {
  expect(res.statusCode, res.body).toBe(429);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ code: 'rate_limited', status: 429 });
  const retryAfter = Number(res.headers['retry-after']);
  expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${res.headers['retry-after']}`).toBe(true);
  expect(res.headers['ratelimit-remaining']).toBe('0');
  expect(res.json().detail).toBe(`More than ${LIMIT} requests in 60 s from this caller; try again in ${retryAfter} s`);
}

describe(`the general rate limit per token, session and address (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ app: { rateLimit: { max: LIMIT, windowSeconds: 60 } } });
  const get = (headers: Record<string, string>, remoteAddress = '127.0.0.1', url = '/api/actions?view=pending') => ctx().app.inject({ method: 'GET', url, headers, remoteAddress });

  it('counts each API token on its own: the sixth request in a window is 429 rate_limited with Retry-After, and each counted answer has RateLimit-* headers', async () => {
    const { as, users } = ctx();
    for (let i = 1; i <= LIMIT; i++) expectCounted(await get(as(users.security_reader)), LIMIT - i);
    const limited = await get(as(users.security_reader));
    expectLimited(limited);
    // Even a call that would fail its permission check is refused first: nothing runs past the limit.
    expectLimited(await ctx().request(users.security_reader, 'POST', '/api/actions/approve', { ids: ['0190e3b4-0000-7000-8000-000000000000'] }));

    // Another token of another user, and another token of the same user, each have their own budget.
    expectCounted(await get(as(users.security_operator)), LIMIT - 1);
    const reader = await createUser(ctx().services, 'security_reader', 'reader-with-two-tokens');
    const other = await ctx().services.tokens.create(systemActor(), { name: 'second', scopes: ['actions:read'], expiresInDays: 1 }, reader.actor);
    for (let i = 1; i <= LIMIT; i++) expectCounted(await get(as(reader)), LIMIT - i);
    expectLimited(await get(as(reader)));
    expectCounted(await get({ authorization: `Bearer ${other.secret}` }), LIMIT - 1);
  });

  it('counts each session on its own, and the sign-in itself against the address', async () => {
    const login = async (remoteAddress: string) => {
      const res = await ctx().app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress, payload: { username: 'security-operator', password: PASSWORD } });
      expectCounted(res, LIMIT - 1);
      return /quell_session=[^;]+/.exec(String(res.headers['set-cookie']))![0];
    };
    const [first, second] = [await login('10.4.0.1'), await login('10.4.0.2')];
    for (let i = 1; i <= LIMIT; i++) expectCounted(await get({ cookie: first }, '10.4.0.1'), LIMIT - i);
    expectLimited(await get({ cookie: first }, '10.4.0.9'));
    // The same user in another session, from the address the first one used, is not held back.
    expectCounted(await get({ cookie: second }, '10.4.0.1'), LIMIT - 1);
  });

  it('counts requests without valid credentials against their address: guessing tokens is limited where it comes from', async () => {
    for (let i = 1; i <= LIMIT; i++) {
      const res = await get({ authorization: `Bearer qt_00000000-0000-4000-8000-00000000000${i}_${'x'.repeat(43)}` }, '10.5.0.1');
      expect(res.statusCode).toBe(401);
      expectCounted(res, LIMIT - i);
    }
    expectLimited(await get({}, '10.5.0.1'));
    expectLimited(await get({ cookie: 'quell_session=made-up' }, '10.5.0.1'));
    expectLimited(await ctx().app.inject({ method: 'GET', url: '/api/openapi.json', remoteAddress: '10.5.0.1' }));
    // A valid token from that same address has its own budget.
    expectCounted(await get(ctx().as(ctx().users.global_admin), '10.5.0.1'), LIMIT - 1);
    // IPv6 addresses count by their /64: a host cannot spread itself over its prefix.
    for (let i = 1; i <= LIMIT; i++) expect((await get({}, `2001:db8:1:2::${i}`)).statusCode).toBe(401);
    expectLimited(await get({}, '2001:db8:1:2:ffff::1'));
    expect((await get({}, '2001:db8:1:3::1')).statusCode).toBe(401);
  });

  it('never counts the agents\' routes or the health probes', async () => {
    const address = '10.6.0.1';
    for (let i = 0; i < LIMIT; i++) await get({}, address);
    expectLimited(await get({}, address));
    for (let i = 0; i < LIMIT * 2; i++) {
      for (const url of ['/healthz', '/readyz']) {
        const res = await ctx().app.inject({ method: 'GET', url, remoteAddress: address });
        expect(res.statusCode).toBe(200);
        expect(res.headers['ratelimit-limit']).toBeUndefined();
      }
      const enrol = await ctx().app.inject({ method: 'POST', url: '/agent/v1/enrol', remoteAddress: address, payload: { token: 'qe_not-a-token', publicKey: { kty: 'OKP', crv: 'Ed25519', x: 'x'.repeat(43) }, facts: { hostname: 'h', platform: 'linux', os: 'l', kernel: 'k', ips: [], macs: [], agentVersion: '1' } } });
      expect(enrol.statusCode, enrol.body).not.toBe(429);
      expect(enrol.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});

describe(`the rate limit's window (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ app: { rateLimit: { max: 2, windowSeconds: 1 } } });

  it('lets the caller in again once Retry-After has passed', async () => {
    const { as, users, app } = ctx();
    const get = () => app.inject({ method: 'GET', url: '/api/actions?view=pending', headers: as(users.security_reader) });
    expect((await get()).statusCode).toBe(200);
    expect((await get()).statusCode).toBe(200);
    const limited = await get();
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('1');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const again = await get();
    expect(again.statusCode).toBe(200);
    expect(again.headers['ratelimit-remaining']).toBe('1');
  });
});

describe(`the rate limit turned off (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ app: { rateLimit: null } });

  it('neither counts nor refuses', async () => {
    for (let i = 0; i < 50; i++) {
      const res = await ctx().app.inject({ method: 'GET', url: '/api/actions?view=pending', remoteAddress: '10.7.0.1' });
      expect(res.statusCode).toBe(401);
      expect(res.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});
