import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDialPlan } from './dial-plan.ts';
import { parseServerUrls, setServerUrls } from './enrol.ts';
import { loadIdentity, saveIdentity, serverUrlsOf } from './identity.ts';

/** A seeded generator, so that what is drawn at random is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const REPLICAS = ['https://a.example:8443', 'https://b.example:8443', 'https://c.example:8443'];

describe('which server address an agent dials, and when', () => {
  it('walks the addresses in turn from where it started, one step after each failure', () => {
    const plan = createDialPlan(REPLICAS, () => 0.5);
    expect(plan.current()).toBe(REPLICAS[1]);
    plan.failed();
    expect(plan.current()).toBe(REPLICAS[2]);
    plan.failed();
    expect(plan.current()).toBe(REPLICAS[0]);
    plan.welcomed();
    expect(plan.current()).toBe(REPLICAS[0]);
  });

  it('waits a random time under a bound that doubles with each failure in a row, up to 30 s, and starts small again once welcomed', () => {
    const highest = createDialPlan(REPLICAS, () => 0.999_999);
    const bounds = Array.from({ length: 8 }, () => highest.failed());
    expect(bounds).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    highest.welcomed();
    expect(highest.failed()).toBe(1000);

    // Never sooner than 100 ms, however low the draw.
    const lowest = createDialPlan(REPLICAS, () => 0);
    expect([lowest.failed(), lowest.failed(), lowest.failed()]).toEqual([100, 100, 100]);

    const random = seeded(7);
    const plan = createDialPlan(REPLICAS, random);
    const waits = Array.from({ length: 2000 }, () => {
      plan.welcomed();
      return plan.failed();
    });
    // Spread over the whole first second, not bunched at one instant.
    expect(Math.min(...waits)).toBe(100);
    expect(Math.max(...waits)).toBeGreaterThan(950);
    expect(new Set(waits.map((w) => Math.floor(w / 100))).size).toBe(10);
  });

  it('spreads a fleet across the replicas, and the agents of a replica that dies across the others', () => {
    const random = seeded(42);
    const fleet = Array.from({ length: 3000 }, () => createDialPlan(REPLICAS, random));
    const count = (url: string, plans = fleet) => plans.filter((p) => p.current() === url).length;
    for (const url of REPLICAS) expect(count(url)).toBeGreaterThan(900);

    // Replica a dies: each of its agents moves to the next address in its own walk; a random start spreads them.
    const orphans = fleet.filter((p) => p.current() === REPLICAS[0]);
    orphans.forEach((p) => p.failed());
    expect(count(REPLICAS[0]!, orphans)).toBe(0);
    expect(count(REPLICAS[1]!, orphans) + count(REPLICAS[2]!, orphans)).toBe(orphans.length);
  });

  it('needs an address', () => {
    expect(() => createDialPlan([])).toThrow(/no server address/);
  });
});

describe('the server addresses an operator gives at enrolment', () => {
  it('reads one URL, or replicas separated by commas, without repeats', () => {
    expect(parseServerUrls('https://quell.example:8443')).toEqual(['https://quell.example:8443']);
    expect(parseServerUrls(' https://a.example:8443, https://b.example:8443,,https://a.example:8443 ')).toEqual(['https://a.example:8443', 'https://b.example:8443']);
  });

  it('refuses what is not a list of http(s) URLs of one protocol, saying what to give', () => {
    expect(() => parseServerUrls(' , ')).toThrow(/needs the Quell server URL/);
    expect(() => parseServerUrls('quell.example')).toThrow(/is not a URL/);
    expect(() => parseServerUrls('ftp://quell.example')).toThrow(/https:\/\//);
    expect(() => parseServerUrls('https://a.example,http://b.example')).toThrow(/must all be https:\/\/ or all http:\/\//);
  });

  it('gives an enrolled agent new addresses of the protocol it enrolled with, keeping its keys and pins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'quell-servers-'));
    try {
      const enrolled = {
        serverUrl: 'https://a.example:8443', deviceId: '00000000-0000-7000-8000-000000000001', privateKeyPem: 'key', serverKey: { kty: 'OKP', crv: 'Ed25519', x: 'x' } as const,
        serverKeyId: 'kid', serverCert: { certPem: 'cert', fingerprint: 'AB:CD' },
      };
      saveIdentity(dir, enrolled);
      expect(serverUrlsOf(loadIdentity(dir))).toEqual(['https://a.example:8443']);
      expect(setServerUrls(dir, 'https://a.example:8443,https://b.example:8443')).toEqual(['https://a.example:8443', 'https://b.example:8443']);
      expect(loadIdentity(dir)).toEqual({ ...enrolled, serverUrls: ['https://a.example:8443', 'https://b.example:8443'] });
      expect(statSync(join(dir, 'identity.json')).mode & 0o777).toBe(0o600);
      expect(() => setServerUrls(dir, 'http://b.example:8080')).toThrow(/enrolled over https/);
      expect(serverUrlsOf(loadIdentity(dir))).toHaveLength(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
