import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { useTestApp } from '../../test/helper.ts';

/** A built console as Vite lays it out: index.html with the nonce placeholder, hashed files under assets/. */
function fakeDist(): string {
  const dir = mkdtempSync(join(tmpdir(), 'quell-console-dist-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><meta name="csp-nonce" content="__CSP_NONCE__"><script type="module" src="/assets/index-abc123.js"></script>');
  writeFileSync(join(dir, 'assets', 'index-abc123.js'), `console.log(${JSON.stringify('x'.repeat(4000))});`);
  writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  return dir;
}

describe('the web console served at the root URL', () => {
  const dist = fakeDist();
  const ctx = useTestApp({ consoleDir: dist });
  afterAll(() => rmSync(dist, { recursive: true, force: true }));

  it('answers index.html for the root and every client route, with a fresh style nonce in a strict CSP', async () => {
    const nonces = new Set<string>();
    for (const url of ['/', '/action-center/pending', '/action-center/history?type=stop_service', '/devices/0190']) {
      const res = await ctx().app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['cache-control']).toBe('no-cache');
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe');
      const nonce = /'nonce-([^']+)'/.exec(csp)![1]!;
      expect(res.body).toContain(`content="${nonce}"`);
      expect(res.body).not.toContain('__CSP_NONCE__');
      nonces.add(nonce);
    }
    expect(nonces.size).toBe(4);
  });

  it('serves hashed assets with a year-long immutable cache, gzip when asked, and other files revalidated', async () => {
    const plain = await ctx().app.inject({ method: 'GET', url: '/assets/index-abc123.js' });
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(plain.headers['content-encoding']).toBeUndefined();

    const gzipped = await ctx().app.inject({ method: 'GET', url: '/assets/index-abc123.js', headers: { 'accept-encoding': 'gzip, br' } });
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gzipped.rawPayload).toString()).toBe(plain.body);

    const icon = await ctx().app.inject({ method: 'GET', url: '/favicon.svg' });
    expect(icon.headers['content-type']).toBe('image/svg+xml');
    expect(icon.headers['cache-control']).toBe('no-cache');
  });

  it('keeps the server paths JSON: an unknown /api, /agent or missing asset path is a 404 problem, not index.html', async () => {
    const { users, as } = ctx();
    for (const url of ['/api/nope', '/api/actions/export.csv/x', '/agent/v1/nope', '/healthz/x', '/metrics/x', '/assets/gone-123.js']) {
      const res = await ctx().app.inject({ method: 'GET', url, headers: as(users.security_reader) });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).toContain('application/problem+json');
      expect(res.json().code, url).toBe('route_not_found');
    }
    const unauthenticated = await ctx().app.inject({ method: 'GET', url: '/api/nope' });
    expect(unauthenticated.statusCode).toBe(401);
    expect((await ctx().app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
  });
});

describe('the root URL without a built console', () => {
  const ctx = useTestApp({ consoleDir: join(tmpdir(), 'quell-no-console-here') });

  it('says how to build it', async () => {
    const res = await ctx().app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.body).toContain('npm run build:console');
  });
});
