import { isIP } from 'node:net';
import type { AlertOrigin, AlertSeverity, CreateAlertBody, Evidence } from '@quell/contracts';
import { QuellError } from '../../errors.ts';
import type { HostClaims } from '../devices/host-resolution.ts';

/**
 * What every input (Wazuh, ECS) maps a document to before it has a device:
 * the alert, where the engine saw it, and what the document says of its host.
 */
export interface MappedAlert {
  alert: Omit<CreateAlertBody, 'deviceId'>;
  origin: AlertOrigin | null;
  host: HostClaims;
}

/** Bounds on a document's shape beyond its byte size: what a real alert never exceeds. */
export const DOCUMENT_LIMITS = { depth: 32, arrayItems: 1_000, keys: 20_000, stringLength: 65_536 } as const;

/**
 * Refuses a document deeper, wider or with longer text than any real alert
 * (a 400 with the path where it went over), before anything reads it.
 */
export function checkDocumentShape(document: unknown): void {
  const stack: Array<[unknown, string, number]> = [[document, 'body', 0]];
  let keys = 0;
  while (stack.length > 0) {
    const [value, path, depth] = stack.pop()!;
    if (typeof value === 'string') {
      if (value.length > DOCUMENT_LIMITS.stringLength) throw new QuellError('validation_failed', `${path} is longer than ${DOCUMENT_LIMITS.stringLength} characters`);
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= DOCUMENT_LIMITS.depth) throw new QuellError('validation_failed', `${path} is nested deeper than ${DOCUMENT_LIMITS.depth} levels`);
    if (Array.isArray(value) && value.length > DOCUMENT_LIMITS.arrayItems) throw new QuellError('validation_failed', `${path} has more than ${DOCUMENT_LIMITS.arrayItems} items`);
    const entries = Object.entries(value);
    keys += entries.length;
    if (keys > DOCUMENT_LIMITS.keys) throw new QuellError('validation_failed', `the document has more than ${DOCUMENT_LIMITS.keys} fields`);
    for (const [key, child] of entries) stack.push([child, `${path}/${key}`.slice(0, 300), depth + 1]);
  }
}

/** A non-empty string, trimmed, or undefined; numbers count as their text (engines write ids and ports either way). */
export function text(value: unknown, maxLength = 4096): string | undefined {
  const candidate = typeof value === 'number' && Number.isFinite(value) ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  return candidate && candidate.length > 0 && candidate !== '-' ? candidate.slice(0, maxLength) : undefined;
}

/** The first usable text among values, or from the first item of an array value. */
export function firstText(...values: unknown[]): string | undefined {
  for (const value of values) {
    const found = Array.isArray(value) ? value.map((v) => text(v)).find(Boolean) : text(value);
    if (found) return found;
  }
  return undefined;
}

export function hash(value: unknown, length: 32 | 40 | 64): string | undefined {
  const candidate = text(value)?.toLowerCase();
  return candidate && candidate.length === length && /^[0-9a-f]+$/.test(candidate) ? candidate : undefined;
}

export function integer(value: unknown, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,15}$/.test(value.trim()) ? Number(value.trim()) : NaN;
  return Number.isSafeInteger(n) && n >= 0 && n <= max ? n : undefined;
}

export function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** An address worth naming as evidence: a valid IP, not loopback or unspecified. IPv4-mapped IPv6 becomes IPv4. */
export function address(value: unknown): string | undefined {
  let candidate = text(value, 64);
  if (!candidate) return undefined;
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(candidate)) candidate = candidate.slice(7);
  if (isIP(candidate) === 0) return undefined;
  if (/^(127\.|0\.0\.0\.0$)/.test(candidate) || candidate === '::1' || candidate === '::') return undefined;
  return candidate.toLowerCase();
}

/** The last part of a Windows or POSIX path: a process's name from its image. */
export function baseName(path: string): string {
  return path.split(/[\\/]/).filter(Boolean).pop() ?? path;
}

/** Hashes as Sysmon writes them ("SHA1=…,MD5=…,SHA256=…,IMPHASH=…"), any case. */
export function sysmonHashes(value: unknown): { sha256?: string; sha1?: string; md5?: string } {
  const found: { sha256?: string; sha1?: string; md5?: string } = {};
  for (const part of (text(value, 2048) ?? '').split(',')) {
    const [name, digest] = part.split('=').map((s) => s.trim());
    const kind = name?.toLowerCase();
    if (kind === 'sha256') found.sha256 = hash(digest, 64) ?? found.sha256;
    else if (kind === 'sha1') found.sha1 = hash(digest, 40) ?? found.sha1;
    else if (kind === 'md5') found.md5 = hash(digest, 32) ?? found.md5;
  }
  return found;
}

/** "DOMAIN\\user" as a user's name and domain; the domain may be absent. */
export function userOf(value: unknown): { name: string; domain?: string } | undefined {
  const full = text(value, 512);
  if (!full) return undefined;
  const at = full.lastIndexOf('\\');
  const name = (at >= 0 ? full.slice(at + 1) : full).slice(0, 256);
  if (!name) return undefined;
  return at > 0 ? { name, domain: full.slice(0, at).slice(0, 256) } : { name };
}

/** MITRE ATT&CK technique ids anywhere in these values (arrays, objects, text like "technique_id=T1055"). */
export function mitreTechniques(...values: unknown[]): string[] {
  const found = new Set<string>();
  const stack = [...values];
  let budget = 2_000;
  while (stack.length > 0 && budget-- > 0) {
    const value = stack.pop();
    if (typeof value === 'string') for (const match of value.matchAll(/\bT\d{4}(?:\.\d{3})?\b/g)) found.add(match[0]);
    else if (Array.isArray(value)) stack.push(...value);
    else if (typeof value === 'object' && value !== null) stack.push(...Object.values(value));
  }
  return [...found].sort().slice(0, 50);
}

export function uniqueTexts(values: unknown[], maxLength: number, maxItems: number): string[] {
  return [...new Set(values.flatMap((v) => (Array.isArray(v) ? v : [v])).map((v) => text(v, maxLength)).filter((v): v is string => v !== undefined))].slice(0, maxItems);
}

/** Wazuh's rule levels 0–15 and ECS/Kibana severities and risk scores in Quell's four severities. */
export function severityFromLevel(level: number): AlertSeverity {
  if (level >= 12) return 'high';
  if (level >= 8) return 'medium';
  if (level >= 4) return 'low';
  return 'informational';
}

/**
 * Evidence gathered from several fields of one document: the same entity
 * named twice (a process by its image and by its hashes) becomes one piece
 * of evidence with everything said of it.
 */
export class EvidenceList {
  private readonly items = new Map<string, Evidence>();

  add(evidence: Evidence | undefined): this {
    if (!evidence) return this;
    const key = EvidenceList.keyOf(evidence);
    const existing = this.items.get(key);
    if (!existing) this.items.set(key, evidence);
    else this.items.set(key, { ...evidence, ...existing, ...Object.fromEntries(Object.entries(evidence).filter(([k, v]) => v !== undefined && (existing as Record<string, unknown>)[k] === undefined)) } as Evidence);
    return this;
  }

  file(path: string | undefined, rest: Omit<Extract<Evidence, { kind: 'file' }>, 'kind' | 'path'> = {}): this {
    return path ? this.add(withoutUndefined({ kind: 'file' as const, path, ...rest })) : this;
  }

  ip(value: unknown, role?: 'source' | 'destination', port?: unknown): this {
    const found = address(value);
    const p = integer(port, 65_535);
    return found ? this.add(withoutUndefined({ kind: 'ip' as const, address: found, role, port: p })) : this;
  }

  user(value: unknown, domain?: unknown): this {
    const found = userOf(value);
    return found ? this.add(withoutUndefined({ kind: 'user' as const, name: found.name, domain: found.domain ?? text(domain, 256) })) : this;
  }

  url(value: unknown): this {
    const found = text(value);
    return found ? this.add({ kind: 'url', url: found }) : this;
  }

  list(): Evidence[] {
    return [...this.items.values()].slice(0, 100);
  }

  private static keyOf(e: Evidence): string {
    switch (e.kind) {
      case 'file': return `file\u0000${e.path}`;
      case 'process': return `process\u0000${e.path ?? e.name}\u0000${e.pid ?? ''}`;
      case 'registry_key': return `registry\u0000${e.key.toLowerCase()}\u0000${(e.value ?? '').toLowerCase()}`;
      case 'user': return `user\u0000${(e.domain ?? '').toLowerCase()}\u0000${e.name.toLowerCase()}`;
      case 'ip': return `ip\u0000${e.address}`;
      case 'url': return `url\u0000${e.url}`;
      default: return `${e.kind}\u0000${e.name}`;
    }
  }
}

/** An object without its undefined properties: the stored evidence has no `"key": undefined` holes. */
export function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** A timestamp as ISO 8601, from ISO text (a zone with or without a colon; none means UTC) or epoch milliseconds; undefined when it is none. */
export function isoTime(value: unknown): string | undefined {
  let ms: number;
  if (typeof value === 'number') ms = value;
  else {
    const raw = text(value, 64)?.replace(' ', 'T').replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
    const match = raw === undefined ? null : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(raw);
    if (!raw || !match) return undefined;
    ms = Date.parse(match[3] ? raw : `${raw}Z`);
  }
  return Number.isFinite(ms) && ms > 0 && ms < 8_640_000_000_000_000 ? new Date(ms).toISOString() : undefined;
}
