import { API_PATHS } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../test/helper.ts';

describe('OpenAPI document and docs page', () => {
  const ctx = useTestApp();

  it('serves an OpenAPI 3.1 document that documents every fixed path and its problem responses', async () => {
    const res = await ctx().request(null, 'GET', API_PATHS.openapi);
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');
    const documented = Object.keys(doc.paths);
    for (const [name, path] of Object.entries(API_PATHS)) {
      // The agents' WebSocket is not an HTTP operation OpenAPI can describe.
      if (name === 'openapi' || name === 'docs' || name === 'agentConnect') continue;
      expect(documented, name).toContain(path.replace(/:(\w+)/g, '{$1}'));
    }
    expect(doc.paths['/api/actions/approve'].post.responses['4XX']).toBeDefined();
  });

  it('serves the docs page without signing in', async () => {
    const res = await ctx().app.inject({ method: 'GET', url: `${API_PATHS.docs}/` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/html');
  });

  it('sets a request id and security headers on every response', async () => {
    const res = await ctx().app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'trace-123' } });
    expect(res.headers['x-request-id']).toBe('trace-123');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });
});
