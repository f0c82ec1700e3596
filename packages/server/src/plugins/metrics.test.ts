import type { Permission } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../actor.ts';
import { PASSWORD, TEST_DIALECT, createUser, useTestApp } from '../test/helper.ts';

/** Prometheus's own request: GET over HTTP with `Authorization: Bearer`, text exposition format back. */
async function scrape(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  const response = await fetch(`${url}/metrics`, { headers: { accept: 'text/plain;version=0.0.4', ...headers } });
  return { status: response.status, type: response.headers.get('content-type') ?? '', body: await response.text() };
}

describe(`GET /metrics needs metrics:read by default (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' } });
  const tokenWith = async (scopes: Permission[], username: string): Promise<string> => {
    const owner = await createUser(ctx().services, 'security_reader', username);
    return (await ctx().services.tokens.create(systemActor(), { name: `${username} scrape`, scopes, expiresInDays: 1 }, owner.actor)).secret;
  };

  it('refuses a scrape without credentials or with an unknown token: 401 problem, and no figures', async () => {
    await ctx().createAction();
    for (const headers of [{}, { authorization: 'Bearer qt_00000000-0000-4000-8000-000000000000_' + 'x'.repeat(43) }] as Array<Record<string, string>>) {
      const res = await scrape(ctx().url, headers);
      expect(res.status).toBe(401);
      expect(res.type).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'unauthenticated' });
      expect(res.body).not.toContain('quell_actions');
    }
  });

  it('serves the figures to a token that has only the metrics:read scope, as Prometheus sends it', async () => {
    const res = await scrape(ctx().url, { authorization: `Bearer ${await tokenWith(['metrics:read'], 'prometheus')}` });
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/quell_actions\{status="pending_approval",type="isolate_device"\} [1-9]/);
    expect(res.body).toContain('quell_process_');
  });

  it('refuses a token without the metrics:read scope (403 token_scope_missing) and a user scoped to device groups (403 forbidden)', async () => {
    const narrow = await scrape(ctx().url, { authorization: `Bearer ${await tokenWith(['actions:read'], 'no-metrics-scope')}` });
    expect(narrow.status).toBe(403);
    expect(JSON.parse(narrow.body)).toMatchObject({ code: 'token_scope_missing' });

    const group = await ctx().services.devices.createGroup(systemActor(), { name: 'metrics-red', rank: 5, automationLevel: 'full' });
    const scoped = await createUser(ctx().services, 'security_admin', 'red-admin', [group.id]);
    const res = await scrape(ctx().url, ctx().as(scoped));
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'forbidden' });
    expect(res.body).not.toContain('quell_actions');
  });

  it('serves them to a signed-in, unscoped user\'s session', async () => {
    const login = await fetch(`${ctx().url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'security-operator', password: PASSWORD }) });
    const cookie = /quell_session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')![0];
    const res = await scrape(ctx().url, { cookie });
    expect(res.status).toBe(200);
    expect(res.body).toContain('quell_actions');
  });
});

describe(`GET /metrics with QUELL_METRICS_PUBLIC=true (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, app: { metricsPublic: true } });

  it('serves the figures without credentials, as the operator chose', async () => {
    await ctx().createAction();
    const res = await scrape(ctx().url);
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/quell_actions\{status="pending_approval",type="isolate_device"\} [1-9]/);
  });
});
