import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

/**
 * Real alert documents from detection engines' own repositories and
 * documentation (corpus/SOURCES.md names each one's repository, path, commit
 * and licence), each with the evidence, rule, MITRE ids and host it must
 * yield, posted through the real routes of a real server.
 */
interface Case {
  file: string;
  format: 'wazuh' | 'ecs' | 'sysmon' | 'windows';
  source: { repository: string; path: string; commit: string; licence: string };
  host: string;
  ruleId?: string;
  mitreTechniques?: string[];
  mitreTactics?: string[];
  evidence: Array<Record<string, unknown>>;
}

const corpus = (name: string) => JSON.parse(readFileSync(new URL(`./corpus/${name}`, import.meta.url), 'utf8')) as unknown;
const wazuhCases = corpus('wazuh-cases.json') as Case[];
const windowsCases = corpus('sysmon-cases.json') as Case[];
const ecsCases = corpus('ecs-cases.json') as Case[];
const allCases = [...wazuhCases, ...ecsCases, ...windowsCases];

interface WindowsEvent {
  Event: {
    System: { Provider: { '#attributes': { Name: string } }; EventID: number; Channel: string; Computer: string; EventRecordID: number; TimeCreated: { '#attributes': { SystemTime: string } } };
    EventData: Record<string, unknown>;
  };
}

/**
 * A Windows event as Winlogbeat ships it: the ECS envelope (host, event,
 * agent) around `winlog`, whose event_data is the event's EventData with
 * every value as text.
 */
function asWinlogbeat(raw: WindowsEvent): Record<string, unknown> {
  const { System, EventData } = raw.Event;
  return {
    '@timestamp': System.TimeCreated['#attributes'].SystemTime,
    agent: { type: 'winlogbeat', name: System.Computer },
    host: { name: System.Computer, os: { type: 'windows' } },
    event: { code: String(System.EventID), provider: System.Provider['#attributes'].Name, kind: 'event' },
    winlog: {
      channel: System.Channel, computer_name: System.Computer, event_id: String(System.EventID), provider_name: System.Provider['#attributes'].Name,
      record_id: String(System.EventRecordID), event_data: Object.fromEntries(Object.entries(EventData).map(([k, v]) => [k, String(v)])),
    },
  };
}

/**
 * The same event as a Wazuh manager relays it from its agent's eventchannel
 * reader: `data.win.system` and `data.win.eventdata`, field names with their
 * first letter in lower case, every value as text with its backslashes and
 * double quotes escaped (Wazuh 4 writes `C:\\\\Windows\\\\…` in alerts.json).
 */
function asWazuh(raw: WindowsEvent, id: string): Record<string, unknown> {
  const { System, EventData } = raw.Event;
  const lower = (key: string) => key.charAt(0).toLowerCase() + key.slice(1);
  return {
    timestamp: System.TimeCreated['#attributes'].SystemTime, id,
    rule: { level: 5, description: `Windows event ${System.EventID}`, groups: ['windows'] },
    agent: { name: System.Computer },
    manager: { name: 'corpus' },
    decoder: { name: 'windows_eventchannel' },
    location: 'EventChannel',
    data: {
      win: {
        system: { providerName: System.Provider['#attributes'].Name, eventID: String(System.EventID), channel: System.Channel, computer: System.Computer, eventRecordID: String(System.EventRecordID) },
        eventdata: Object.fromEntries(Object.entries(EventData).map(([k, v]) => [lower(k), String(v).replace(/[\\"]/g, '\\$&')])),
      },
    },
  };
}

/**
 * An ECS event as its Beat shipped it. Filebeat's golden files leave out
 * `@timestamp` where the log line has no year (syslog's auth.log); a shipped
 * event always has one, so the test gives those a fixed time. Everything
 * else is the source's.
 */
const asShipped = (doc: Record<string, unknown>) => ('@timestamp' in doc ? doc : { '@timestamp': '2024-02-21T21:54:44.000Z', ...doc });

const containsEvidence = (expected: Array<Record<string, unknown>>) => expect.arrayContaining(expected.map((e) => expect.objectContaining(e)));

describe(`the alert corpus (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  it('holds at least 50 real documents in the three formats, each with its source and licence', () => {
    expect(allCases.length).toBeGreaterThanOrEqual(50);
    expect(new Set(allCases.map((c) => (c.format === 'windows' ? 'sysmon' : c.format)))).toEqual(new Set(['wazuh', 'ecs', 'sysmon']));
    for (const c of allCases) expect(c.source).toMatchObject({ repository: expect.any(String), path: expect.any(String), commit: expect.stringMatching(/^[0-9a-f]{40}$/), licence: expect.any(String) });
  });

  it.each(wazuhCases.map((c) => [c.file, c] as const))('maps the Wazuh alert %s', async (_name, c) => {
    const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', corpus(c.file));
    expect(response.statusCode, response.body).toBe(201);
    const alert = response.json();
    expect(alert).toMatchObject({ detectionSource: 'wazuh', ruleId: c.ruleId, mitreTechniques: c.mitreTechniques, mitreTactics: c.mitreTactics, device: { name: c.host, managed: false } });
    if (c.evidence.length === 0) expect(alert.evidence).toEqual([]);
    else expect(alert.evidence).toEqual(containsEvidence(c.evidence));
    // What the response said is what was stored.
    const stored = (await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts/${alert.id}`)).json();
    expect(stored).toMatchObject({ ruleId: c.ruleId, mitreTechniques: c.mitreTechniques, evidence: alert.evidence, deviceId: alert.device.id, origin: expect.objectContaining({ agentName: c.host }) });
  });

  it.each(ecsCases.map((c) => [c.file, c] as const))('maps the ECS event %s', async (_name, c) => {
    const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/ecs', asShipped(corpus(c.file) as Record<string, unknown>));
    expect(response.statusCode, response.body).toBe(201);
    const alert = response.json();
    expect(alert).toMatchObject({ detectionSource: 'elastic', device: { name: c.host, managed: false } });
    expect(alert.evidence).toEqual(containsEvidence(c.evidence));
    // What the response said is what was stored.
    const stored = (await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts/${alert.id}`)).json();
    expect(stored).toMatchObject({ evidence: alert.evidence, deviceId: alert.device.id });
  });

  it.each(windowsCases.map((c) => [c.file, c] as const))('maps the Windows event %s as Winlogbeat (ECS) and Wazuh relay it, onto one device', async (name, c) => {
    const raw = corpus(c.file) as WindowsEvent;
    const viaWinlogbeat = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/ecs', asWinlogbeat(raw));
    expect(viaWinlogbeat.statusCode, viaWinlogbeat.body).toBe(201);
    const viaWazuh = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', asWazuh(raw, name));
    expect(viaWazuh.statusCode, viaWazuh.body).toBe(201);
    for (const alert of [viaWinlogbeat.json(), viaWazuh.json()]) {
      expect(alert.evidence).toEqual(containsEvidence(c.evidence));
      // A registry entry is never a file.
      expect(alert.evidence.filter((e: { kind: string; path?: string }) => e.kind === 'file' && /^HK(LM|CU|U|CR|EY_)/i.test(e.path ?? ''))).toEqual([]);
    }
    expect(viaWinlogbeat.json().device).toMatchObject({ name: c.host, managed: false });
    expect(viaWazuh.json().device).toMatchObject({ id: viaWinlogbeat.json().device.id, created: false, matchedBy: 'host_name' });
  });
});
