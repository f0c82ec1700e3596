import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { StoreLocation } from './db/store.ts';

/** Configuration, read and validated once at start (DESIGN.md §5). */
export interface Config {
  dataDir: string;
  store: StoreLocation;
  host: string;
  port: number;
  publicUrl: string;
  adminPassword: string | null;
  pendingExpiryHours: number;
  logLevel: string;
  /** How often each process looks for due jobs, in milliseconds. */
  jobPollMs: number;
  /** HTTPS: a self-signed certificate made on first start, the administrator's own files, or none (plain HTTP). */
  tls: { mode: 'self-signed' } | { mode: 'files'; certFile: string; keyFile: string } | null;
  /** The general limit on requests per caller (token, session or address); null when turned off. See docs/throttling.md. */
  rateLimit: RateLimit | null;
  /** GET /metrics without credentials: only when the operator says so; otherwise it needs `metrics:read`. */
  metricsPublic: boolean;
}

export interface RateLimit { max: number; windowSeconds: number }

/**
 * Far above what one caller of a single server reaches in the benchmarks (about
 * 650 list requests/s from 10 connections, 430 alerts/s from 20 senders, for
 * seconds at a time): the limit stops a runaway script, not a busy integration.
 */
export const RATE_LIMIT_DEFAULTS: RateLimit = { max: 20_000, windowSeconds: 60 };

export class ConfigError extends Error {}

const NAMES = [
  'QUELL_DATA_DIR', 'QUELL_DATABASE_URL', 'QUELL_HOST', 'QUELL_PORT', 'QUELL_ADMIN_PASSWORD',
  'QUELL_PUBLIC_URL', 'QUELL_PENDING_EXPIRY_HOURS', 'QUELL_LOG_LEVEL', 'QUELL_JOB_POLL_MS', 'QUELL_TLS', 'QUELL_TLS_CERT', 'QUELL_TLS_KEY',
  'QUELL_RATE_LIMIT', 'QUELL_RATE_LIMIT_WINDOW_SECONDS', 'QUELL_METRICS_PUBLIC',
] as const;
type Name = (typeof NAMES)[number];
type Source = Partial<Record<Name, string>>;

/**
 * Builds the configuration from the environment, or from the JSON file named by
 * QUELL_CONFIG (same names as keys); the environment wins over the file.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const fromFile = env.QUELL_CONFIG ? readConfigFile(env.QUELL_CONFIG) : {};
  const source: Source = { ...fromFile };
  for (const name of NAMES) if (env[name] !== undefined && env[name] !== '') source[name] = env[name];
  return parseConfig(source);
}

function readConfigFile(path: string): Source {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`QUELL_CONFIG: cannot read ${path} as JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`QUELL_CONFIG: ${path} must hold a JSON object`);
  const source: Source = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!(NAMES as readonly string[]).includes(key)) throw new ConfigError(`QUELL_CONFIG: unknown key ${key} in ${path}; known keys: ${NAMES.join(', ')}`);
    source[key as Name] = String(value);
  }
  return source;
}

export function parseConfig(source: Source): Config {
  const dataDir = resolve(source.QUELL_DATA_DIR ?? './data');
  const url = source.QUELL_DATABASE_URL;
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) {
    throw new ConfigError('QUELL_DATABASE_URL must start with postgres:// (leave it unset to use the embedded SQLite database)');
  }
  const host = source.QUELL_HOST ?? '127.0.0.1';
  const port = integer(source, 'QUELL_PORT', 8080, 0, 65535);
  const adminPassword = source.QUELL_ADMIN_PASSWORD ?? null;
  if (adminPassword !== null && adminPassword.length < 12) throw new ConfigError('QUELL_ADMIN_PASSWORD must be at least 12 characters long');
  const tls = parseTls(source);
  const publicUrl = source.QUELL_PUBLIC_URL ?? `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (!/^https?:\/\//.test(publicUrl)) throw new ConfigError('QUELL_PUBLIC_URL must be an http:// or https:// URL');
  return {
    dataDir,
    store: url ? { dialect: 'postgres', url } : { dialect: 'sqlite', file: join(dataDir, 'quell.sqlite') },
    host,
    port,
    publicUrl,
    adminPassword,
    pendingExpiryHours: integer(source, 'QUELL_PENDING_EXPIRY_HOURS', 24 * 7, 1, 24 * 90),
    logLevel: oneOf(source, 'QUELL_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    jobPollMs: integer(source, 'QUELL_JOB_POLL_MS', 5000, 10, 3_600_000),
    tls,
    rateLimit: parseRateLimit(source),
    metricsPublic: oneOf(source, 'QUELL_METRICS_PUBLIC', 'false', ['false', 'true']) === 'true',
  };
}

function parseRateLimit(source: Source): RateLimit | null {
  const max = integer(source, 'QUELL_RATE_LIMIT', RATE_LIMIT_DEFAULTS.max, 0, 10_000_000);
  const windowSeconds = integer(source, 'QUELL_RATE_LIMIT_WINDOW_SECONDS', RATE_LIMIT_DEFAULTS.windowSeconds, 1, 86_400);
  return max === 0 ? null : { max, windowSeconds };
}

function parseTls(source: Source): Config['tls'] {
  const { QUELL_TLS_CERT: certFile, QUELL_TLS_KEY: keyFile } = source;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ConfigError('QUELL_TLS_CERT and QUELL_TLS_KEY go together: give both PEM files, or neither');
  const mode = oneOf(source, 'QUELL_TLS', certFile ? 'files' : 'off', ['off', 'self-signed', 'files']);
  if (mode === 'files' && !certFile) throw new ConfigError('QUELL_TLS=files needs QUELL_TLS_CERT and QUELL_TLS_KEY');
  if (mode === 'files') return { mode, certFile: resolve(certFile!), keyFile: resolve(keyFile!) };
  return mode === 'self-signed' ? { mode } : null;
}

function integer(source: Source, name: Name, fallback: number, min: number, max: number): number {
  const raw = source[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, not "${raw}"`);
  return value;
}

function oneOf<T extends string>(source: Source, name: Name, fallback: T, allowed: readonly T[]): T {
  const raw = source[name];
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, not "${raw}"`);
  return raw as T;
}

