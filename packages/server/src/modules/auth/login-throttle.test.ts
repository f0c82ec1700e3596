import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { PASSWORD, TEST_DIALECT, createUser, useTestApp } from '../../test/helper.ts';
import { LOGIN_THROTTLE, delayAfter } from './login-limiter.ts';

const WRONG = 'wrong password!';

/** A 429 of the sign-in throttle: the problem shape, and Retry-After equal to the seconds `detail` names. */
function expectThrottled(res: LightMyRequestResponse, seconds: number): void {
  expect(res.statusCode, res.body).toBe(429);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ code: 'too_many_login_attempts', status: 429, detail: `Too many failed sign-ins; try again in ${seconds} s` });
  expect(res.headers['retry-after']).toBe(String(seconds));
}

describe(`sign-in throttling that slows guessing without locking the owner out (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const signIn = (username: string, password: string, remoteAddress: string) =>
    ctx().app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress, payload: { username, password } });
  const failuresInAudit = async (): Promise<number> => (await ctx().store.db.selectFrom('audit_log').select('seq').where('kind', '=', 'auth.login_failed').execute()).length;

  it('doubles the wait per failure after five from one address for one user name: 1 s, 2 s, 4 s (pure schedule up to the 15-minute cap)', () => {
    expect([4, 5, 6, 7, 8].map((n) => delayAfter(n, LOGIN_THROTTLE.pairFreeFailures))).toEqual([0, 1000, 2000, 4000, 8000]);
    expect(delayAfter(15, LOGIN_THROTTLE.pairFreeFailures)).toBe(LOGIN_THROTTLE.maxDelayMs);
    expect(delayAfter(10_000, LOGIN_THROTTLE.pairFreeFailures)).toBe(15 * 60_000);
  });

  it('slows a guesser at one address with growing waits and Retry-After on each 429, while the owner signs in from elsewhere at once', async () => {
    const { clock } = ctx();
    const auditBefore = await failuresInAudit();
    for (let i = 0; i < 5; i++) expect((await signIn('security-reader', WRONG, '10.1.1.1')).statusCode).toBe(401);
    expectThrottled(await signIn('security-reader', WRONG, '10.1.1.1'), 1);
    // Not even checked while it must wait: the right password gets the same 429.
    expectThrottled(await signIn('security-reader', PASSWORD, '10.1.1.1'), 1);
    // The owner, at an address that has not been failing, is let in.
    expect((await signIn('security-reader', PASSWORD, '10.1.1.2')).statusCode).toBe(200);

    clock.advance(1000);
    expect((await signIn('security-reader', WRONG, '10.1.1.1')).statusCode).toBe(401);
    expectThrottled(await signIn('security-reader', WRONG, '10.1.1.1'), 2);
    clock.advance(1999);
    expectThrottled(await signIn('security-reader', WRONG, '10.1.1.1'), 1);
    clock.advance(1);
    expect((await signIn('security-reader', WRONG, '10.1.1.1')).statusCode).toBe(401);
    expectThrottled(await signIn('security-reader', WRONG, '10.1.1.1'), 4);
    // Only the seven checked failures are audited; the refused tries are not.
    expect(await failuresInAudit()).toBe(auditBefore + 7);

    // The same address may still try other user names: the streak is per user name there.
    expect((await signIn('security-operator', PASSWORD, '10.1.1.1')).statusCode).toBe(200);
    // An hour without failures, and the address starts again from zero.
    clock.advance(LOGIN_THROTTLE.forgetAfterMs + 1);
    expect((await signIn('security-reader', PASSWORD, '10.1.1.1')).statusCode).toBe(200);
  });

  it('slows an address spraying many user names after twenty failures, for every user name there; a sign-in of its own does not reset that', async () => {
    const { clock } = ctx();
    await createUser(ctx().services, 'security_reader', 'sprayer');
    // Four per user name stays under the per-name streak; twenty in all reaches the address's limit.
    for (let i = 0; i < 20; i++) expect((await signIn(`victim-${i % 5}`, WRONG, '10.2.2.2')).statusCode).toBe(401);
    expectThrottled(await signIn('sprayer', PASSWORD, '10.2.2.2'), 1);
    expect((await signIn('security-admin', PASSWORD, '10.2.2.3')).statusCode).toBe(200);

    clock.advance(1000);
    // The guesser signs in to an account of their own to wipe the slate: the address's count stays.
    expect((await signIn('sprayer', PASSWORD, '10.2.2.2')).statusCode).toBe(200);
    expect((await signIn('victim-9', WRONG, '10.2.2.2')).statusCode).toBe(401);
    expectThrottled(await signIn('victim-10', WRONG, '10.2.2.2'), 2);
  });

  it('caps a guess spread over many addresses at 100 failures an hour per account: new addresses then wait, the owner\'s known address does not', async () => {
    const { clock } = ctx();
    const owner = await createUser(ctx().services, 'security_admin', 'spread-target');
    expect((await signIn(owner.username, PASSWORD, '10.9.0.1')).statusCode).toBe(200);
    for (let i = 0; i < LOGIN_THROTTLE.accountFailuresPerHour; i++) {
      clock.advance(1000);
      expect((await signIn(owner.username, WRONG, `10.8.${i >> 8}.${i & 255}`)).statusCode).toBe(401);
    }
    // The first of the 100 failures leaves the hour in 3600 - 99 s.
    expectThrottled(await signIn(owner.username, PASSWORD, '10.7.0.1'), 3600 - 99);
    expectThrottled(await signIn(owner.username.toUpperCase(), PASSWORD, '10.7.0.2'), 3600 - 99);
    expect((await signIn(owner.username, PASSWORD, '10.9.0.1')).statusCode).toBe(200);
    // Other accounts are not affected.
    expect((await signIn('global-admin', PASSWORD, '10.7.0.3')).statusCode).toBe(200);

    clock.advance((3600 - 99) * 1000);
    expect((await signIn(owner.username, PASSWORD, '10.7.0.1')).statusCode).toBe(200);
  });
});
