import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config.ts';

describe('configuration', () => {
  it('defaults to the embedded SQLite database under ./data on 127.0.0.1:8080', () => {
    const config = parseConfig({});
    expect(config.store).toMatchObject({ dialect: 'sqlite' });
    expect(config.store.dialect === 'sqlite' && config.store.file.endsWith('data/quell.sqlite')).toBe(true);
    expect(config).toMatchObject({ host: '127.0.0.1', port: 8080, publicUrl: 'http://127.0.0.1:8080', pendingExpiryHours: 168, adminPassword: null });
  });

  it('uses PostgreSQL when QUELL_DATABASE_URL is set', () => {
    expect(parseConfig({ QUELL_DATABASE_URL: 'postgres://db.internal/quell' }).store).toEqual({ dialect: 'postgres', url: 'postgres://db.internal/quell' });
  });

  it('serves HTTPS with a self-signed certificate, or with the administrator\'s own files', () => {
    expect(parseConfig({}).tls).toBeNull();
    expect(parseConfig({ QUELL_TLS: 'self-signed' })).toMatchObject({ tls: { mode: 'self-signed' }, publicUrl: 'https://127.0.0.1:8080' });
    expect(parseConfig({ QUELL_TLS_CERT: '/etc/quell/cert.pem', QUELL_TLS_KEY: '/etc/quell/key.pem' }).tls).toEqual({ mode: 'files', certFile: '/etc/quell/cert.pem', keyFile: '/etc/quell/key.pem' });
  });

  it('limits each caller to 20,000 requests a minute unless told otherwise, and serves /metrics publicly only when told to', () => {
    expect(parseConfig({})).toMatchObject({ rateLimit: { max: 20_000, windowSeconds: 60 }, metricsPublic: false });
    expect(parseConfig({ QUELL_RATE_LIMIT: '600', QUELL_RATE_LIMIT_WINDOW_SECONDS: '10' }).rateLimit).toEqual({ max: 600, windowSeconds: 10 });
    expect(parseConfig({ QUELL_RATE_LIMIT: '0' }).rateLimit).toBeNull();
    expect(parseConfig({ QUELL_METRICS_PUBLIC: 'true' }).metricsPublic).toBe(true);
  });

  it.each([
    [{ QUELL_RATE_LIMIT: 'lots' }, /QUELL_RATE_LIMIT must be a whole number/],
    [{ QUELL_RATE_LIMIT_WINDOW_SECONDS: '0' }, /QUELL_RATE_LIMIT_WINDOW_SECONDS must be a whole number from 1 to 86400/],
    [{ QUELL_METRICS_PUBLIC: 'yes' }, /QUELL_METRICS_PUBLIC must be one of false, true/],
    [{ QUELL_TLS: 'yes' }, /QUELL_TLS must be one of off, self-signed, files/],
    [{ QUELL_TLS_CERT: '/etc/quell/cert.pem' }, /QUELL_TLS_CERT and QUELL_TLS_KEY go together/],
    [{ QUELL_TLS: 'files' }, /QUELL_TLS=files needs QUELL_TLS_CERT and QUELL_TLS_KEY/],
    [{ QUELL_PORT: 'eighty' }, /QUELL_PORT must be a whole number/],
    [{ QUELL_PORT: '70000' }, /QUELL_PORT must be a whole number from 0 to 65535/],
    [{ QUELL_DATABASE_URL: 'mysql://x' }, /must start with postgres:\/\//],
    [{ QUELL_ADMIN_PASSWORD: 'short' }, /at least 12 characters/],
    [{ QUELL_LOG_LEVEL: 'loud' }, /QUELL_LOG_LEVEL must be one of/],
    [{ QUELL_PUBLIC_URL: 'ftp://x' }, /QUELL_PUBLIC_URL must be an http/],
  ])('refuses %o with a message that says what to fix', (source, message) => {
    expect(() => parseConfig(source)).toThrow(ConfigError);
    expect(() => parseConfig(source)).toThrow(message);
  });
});
