import { createHmac, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, sign as signBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AGENT_MAX_FRAME_BYTES, AGENT_PROTOCOL_VERSION, API_PATHS, type AgentFrame, type CommandPayload, type Ed25519PublicJwk, type ServerFrame, type StatePayload,
  type StateReportPayload, challengeMessage,
} from '@quell/contracts';
import { systemActor } from '@quell/server';
import { CompactSign } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { createCommandSigner } from '@quell/server/testing';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { type RunningAgent, startAgent } from './agent.ts';
import { journalEntries, makeSparseFile, recordingLog, recordingRunner, sha256OfFile, slowFileBytes } from './test/channel.ts';
import { enrolAgent } from './enrol.ts';
import { signLocalAction, signOffboarded } from './protocol.ts';
import { waitFor, waitForAction } from './test/helper.ts';

/**
 * Attacks on the command channel, from both ends, against the real agent
 * code and the real server. Every refusal must be said (a frame and a log
 * line), must leave nothing done, and must not disturb the genuine agent.
 */
describe(`attacks on the agent protocol (${TEST_DIALECT})`, () => {
  // The server's command-signing key, held by the test so it can sign what a server never would.
  const serverKey: KeyObject = generateKeyPairSync('ed25519').privateKey;
  const signer = createCommandSigner(serverKey);
  const serverLog: Array<{ level: number; msg: string; reason?: string; deviceId?: string | null }> = [];
  const ctx = useTestApp({
    listen: { host: '127.0.0.1' },
    clock: liveClock(),
    signer,
    gateway: { handshakeTimeoutMs: 1000 },
    gatewayLog: pino({ level: 'debug' }, { write: (line: string) => void serverLog.push(JSON.parse(line) as (typeof serverLog)[number]) }),
  });
  const work = mkdtempSync(join(tmpdir(), 'quell-attacks-'));
  const agentDir = join(work, 'agent');
  const log = recordingLog();
  const runner = recordingRunner();
  let relay: Relay;
  let agent: RunningAgent;
  let deviceId: string;

  beforeAll(async () => {
    relay = await startRelay(ctx().url);
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'attacks', uses: 1, expiresInDays: 1 });
    deviceId = (await enrolAgent({ serverUrl: relay.url, token: secret, dir: agentDir })).deviceId;
    agent = await startAgent({ dir: agentDir, runner, log });
    await agent.connected();
  });
  afterAll(async () => {
    await agent?.stop();
    await relay?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const settled = (id: string) => waitForAction(ctx(), id);

  /** A real file the genuine agent quarantines through the real server, proving it still works. */
  async function quarantineThroughServer(name: string, bytes?: number): Promise<{ id: string; path: string }> {
    const path = join(mkdtempSync(join(work, 'files-')), name);
    if (bytes === undefined) writeFileSync(path, `${name} ${randomUUID()}`);
    else makeSparseFile(path, bytes);
    const action = await ctx().services.actions.create(ctx().users.security_operator.actor, {
      type: 'quarantine_file', deviceId, source: 'manual', entity: { name, path, sha256: await sha256OfFile(path) },
    });
    return { id: action.id, path };
  }

  const refusedAudit = async () => (await ctx().store.db.selectFrom('audit_log').selectAll().where('kind', '=', 'agent.command_refused').orderBy('seq').execute())
    .map((row) => ({ actor: row.actor, targetId: row.target_id, reason: (JSON.parse(row.after_json!) as { reason: string }).reason }));

  describe('the agent refuses every command the server did not sign for it, now, once', () => {
    const bait = join(work, 'bait.elf');
    let baitHash: string;
    let usedNonce: string;
    let otherDeviceId: string;
    const otherKey = generateKeyPairSync('ed25519').privateKey;

    beforeAll(async () => {
      writeFileSync(bait, 'a file that must stay where it is');
      baitHash = await sha256OfFile(bait);
      otherDeviceId = await ctx().createDevice({ name: 'someone-else' });
    });

    const now = (): number => Math.floor(Date.now() / 1000);
    /** A command that would be valid if the server had signed it, against the bait file or the network. */
    const command = (type: 'quarantine_file' | 'isolate_device'): CommandPayload => ({
      v: AGENT_PROTOCOL_VERSION, actionId: randomUUID(), deviceId, type, undoOf: null, iat: now(), exp: now() + 3600, nonce: randomBytes(16).toString('base64url'),
      ...(type === 'quarantine_file' ? { entity: { name: bait, path: bait, sha256: baitHash }, parameters: {} } : { entity: { name: 'endpoint' }, parameters: { isolation: 'full' } }),
    });
    const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signWith = (key: KeyObject, payload: CommandPayload): Promise<string> =>
      new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'EdDSA', typ: 'quell-command+jws' }).sign(key);

    it('carries out a genuine command relayed from the server', async () => {
      const { id, path } = await quarantineThroughServer('genuine.elf');
      const done = await settled(id);
      expect(done.status, JSON.stringify(done.result)).toBe('completed');
      expect(() => readFileSync(path)).toThrow(/ENOENT/);
      const row = await ctx().store.db.selectFrom('actions').select('command_jws').where('id', '=', id).executeTakeFirstOrThrow();
      usedNonce = (JSON.parse(Buffer.from(row.command_jws!.split('.')[1]!, 'base64url').toString()) as CommandPayload).nonce;
    });

    /** `trusted`: the signature holds, so the agent may name the action it refuses; otherwise it names none. */
    const FORGERIES: Array<{ name: string; trusted: boolean; reason: RegExp; forge: (p: CommandPayload) => Promise<string> }> = [
      { name: 'with no signature (alg none)', trusted: false, reason: /signature does not verify/, forge: async (p) => `${b64({ alg: 'none', typ: 'quell-command+jws' })}.${b64(p)}.` },
      { name: 'that is garbage', trusted: false, reason: /signature does not verify/, forge: async () => randomBytes(120).toString('base64url') },
      {
        name: 'MACed with the public server key (algorithm confusion)', trusted: false, reason: /signature does not verify/,
        forge: async (p) => {
          const signingInput = `${b64({ alg: 'HS256', typ: 'quell-command+jws' })}.${b64(p)}`;
          return `${signingInput}.${createHmac('sha256', JSON.stringify(signer.publicJwk)).update(signingInput).digest('base64url')}`;
        },
      },
      {
        name: 'whose payload was tampered with under a genuine signature', trusted: false, reason: /signature does not verify/,
        forge: async (p) => {
          const [header, , signature] = (await signWith(serverKey, { ...p, entity: { name: 'harmless', path: '/nonexistent/harmless' } })).split('.');
          return `${header}.${b64(p)}.${signature}`;
        },
      },
      { name: 'signed by another server key', trusted: false, reason: /signature does not verify/, forge: (p) => signWith(otherKey, p) },
      { name: 'that has expired', trusted: true, reason: /^command has expired$/, forge: (p) => signWith(serverKey, { ...p, iat: now() - 7200, exp: now() - 60 }) },
      { name: 'issued far in the future', trusted: true, reason: /^command is issued in the future$/, forge: (p) => signWith(serverKey, { ...p, iat: now() + 86_400, exp: now() + 2 * 86_400 }) },
      { name: 'replaying a used nonce under a new action id', trusted: true, reason: /replay/, forge: (p) => signWith(serverKey, { ...p, nonce: usedNonce }) },
      { name: 'addressed to another device', trusted: true, reason: /^command is addressed to another device$/, forge: (p) => signWith(serverKey, { ...p, deviceId: otherDeviceId }) },
    ];

    it.each(FORGERIES)('refuses a command $name: a rejected frame with the reason, a log line, an audit entry, nothing run', async ({ trusted, reason, forge }) => {
      const callsBefore = runner.calls.length;
      for (const type of ['quarantine_file', 'isolate_device'] as const) {
        const payload = command(type);
        const jws = await forge(payload);
        const audited = (await refusedAudit()).length;
        const seen = relay.fromAgent.length;
        relay.inject({ t: 'command', jws });

        const rejected = await waitFor('the agent to reject the command', async () => relay.fromAgent.slice(seen).find((f) => f.t === 'rejected'));
        expect(rejected).toEqual({ t: 'rejected', actionId: trusted ? payload.actionId : null, reason: expect.stringMatching(reason) });
        expect(log.entries.at(-1)).toMatchObject({ level: 'warn', msg: 'command refused', fields: { actionId: trusted ? payload.actionId : null, reason: expect.stringMatching(reason) } });
        // The server heard the refusal and kept it in the audit log, under this agent's name.
        const entry = await waitFor('the refusal in the audit log', async () => (await refusedAudit())[audited]);
        // These commands name made-up actions, not this device's: the entry keeps no link to them.
        expect(entry).toEqual({ actor: `agent:${deviceId}`, targetId: null, reason: expect.stringMatching(reason) });
        // Refused before anything else: no acknowledgement, no result, no journal entry.
        expect(relay.fromAgent.slice(seen).filter((f) => f.t !== 'rejected')).toEqual([]);
        expect(journalEntries(agentDir).filter((e) => e.actionId === payload.actionId || e.nonce === payload.nonce)).toEqual([]);
      }
      expect(runner.calls.slice(callsBefore)).toEqual([]);
      expect(await sha256OfFile(bait)).toBe(baitHash);
    });

    it('survives server frames that are not part of the protocol, and logs each', async () => {
      const seen = log.entries.length;
      const callsBefore = runner.calls.length;
      const FRAMES: Array<[text: string, warning: string]> = [
        ['not json', 'server sent a frame that is not JSON'],
        ['{"t":"command"', 'server sent a frame that is not JSON'],
        ['null', 'server sent a frame that is not an object'],
        ['42', 'server sent a frame that is not an object'],
        ['[]', 'server sent a frame that is not an object'],
        ['{"t":"surprise"}', 'server sent a frame that is not part of the protocol'],
        ['{"t":"command","jws":{"not":"a string"}}', 'command refused'],
      ];
      for (const [text] of FRAMES) relay.injectRaw(text);
      const warnings = await waitFor('a warning per frame', async () => (log.entries.length >= seen + FRAMES.length ? log.entries.slice(seen) : undefined));
      expect(warnings.map((e) => [e.level, e.msg])).toEqual(FRAMES.map(([, warning]) => ['warn', warning]));
      expect(runner.calls.slice(callsBefore)).toEqual([]);
      expect(await sha256OfFile(bait)).toBe(baitHash);
    });

    it('keeps working on the same connection: a genuine command afterwards is carried out', async () => {
      const { id, path } = await quarantineThroughServer('afterwards.elf');
      expect((await settled(id)).status).toBe('completed');
      expect(() => readFileSync(path)).toThrow(/ENOENT/);
      expect(log.count('connected')).toBe(1);
      expect(log.count('disconnected')).toBe(0);
      // A quarantine runs no command but reading the file's extended attributes.
      expect(runner.calls.map((c) => c.command).filter((c) => c !== 'getfattr')).toEqual([]);
    });
  });

  describe('the server refuses every connection that breaks the protocol, and nobody else notices', () => {
    const wsUrl = (): string => `${ctx().url.replace(/^http/, 'ws')}${API_PATHS.agentConnect}`;
    /** Devices whose keys this test holds: one enrolled (the intruder), one offboarded since. */
    const enrolled = {} as Record<'intruder' | 'offboarded', { id: string; key: KeyObject }>;
    let capturedHello: { deviceId: string; signature: string };

    /** A device enrolled with a key this test holds, so it can speak for it. */
    async function enrolRaw(name: string): Promise<{ id: string; key: KeyObject }> {
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name, uses: 1, expiresInDays: 1 });
      const { deviceId: id } = await ctx().services.agents.enrol({
        token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x },
        facts: { hostname: name, platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'raw' },
      }, null);
      return { id, key: privateKey };
    }

    beforeAll(async () => {
      enrolled.intruder = await enrolRaw('intruder');
      enrolled.offboarded = await enrolRaw('offboarded');
      // Offboarded all the way: asked, and the agent's signed report received (which revokes it).
      await ctx().services.agents.offboard(systemActor(), enrolled.offboarded.id);
      const report = signOffboarded(enrolled.offboarded.key, { deviceId: enrolled.offboarded.id, released: [], kept: [], failures: [], vault: { files: 0, instructions: null } });
      await ctx().services.agents.offboarded(enrolled.offboarded.id, createPublicKey(enrolled.offboarded.key), report);
    });

    function rawClient() {
      const ws = new WebSocket(wsUrl());
      const frames: ServerFrame[] = [];
      ws.on('error', () => {}); // the server ending a bad connection abruptly is the point
      const opened = new Promise<void>((resolve) => ws.once('open', () => resolve()));
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
      const challenge = new Promise<string>((resolve) => ws.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as ServerFrame;
        frames.push(frame);
        if (frame.t === 'challenge') resolve(frame.nonce);
      }));
      return {
        ws, frames, opened, closed, challenge,
        send: (frame: AgentFrame | Record<string, unknown>) => ws.send(JSON.stringify(frame)),
        /** Bytes straight onto the TCP connection, under the WebSocket framing. */
        raw: () => (ws as unknown as { _socket: Socket })._socket,
        helloFor: async (id: string, key: KeyObject) => ({ t: 'hello' as const, deviceId: id, signature: signBytes(null, Buffer.from(challengeMessage(await challenge, id)), key).toString('base64url') }),
      };
    }
    type RawClient = ReturnType<typeof rawClient>;

    async function authenticatedAs(who: { id: string; key: KeyObject }): Promise<RawClient> {
      const client = rawClient();
      const hello = await client.helloFor(who.id, who.key);
      client.send(hello);
      capturedHello = hello;
      await waitFor('welcome', async () => client.frames.find((f) => f.t === 'welcome'));
      return client;
    }

    /** A genuine action the genuine agent runs while the attack happens; it must complete as if nothing happened. */
    async function whileTheAgentWorks(attack: () => Promise<void>): Promise<void> {
      const connects = log.count('connected');
      const { id } = await quarantineThroughServer(`busy-${randomUUID()}.elf`);
      await attack();
      const done = await settled(id);
      expect(done.status, JSON.stringify(done.result)).toBe('completed');
      expect(log.count('connected')).toBe(connects);
    }

    const refusedInLog = (reason: RegExp) => serverLog.some((l) => l.msg === 'agent connection refused' && reason.test(l.reason ?? ''));

    const REFUSALS: Array<{ name: string; reason: RegExp; attack: (c: RawClient) => Promise<void> }> = [
      { name: 'text that is not JSON', reason: /^frame is not JSON$/, attack: async (c) => c.ws.send('hello, server') },
      { name: 'a truncated JSON frame', reason: /^frame is not JSON$/, attack: async (c) => c.ws.send('{"t":"hello","deviceId":"') },
      { name: 'JSON that is not an object', reason: /^frame is not an object$/, attack: async (c) => c.ws.send('null') },
      { name: 'a binary frame', reason: /^binary frames are not part of the protocol$/, attack: async (c) => c.ws.send(Buffer.from('{"t":"hello"}'), { binary: true }) },
      { name: 'an acknowledgement before hello', reason: /^expected hello$/, attack: async (c) => c.send({ t: 'ack', actionId: randomUUID() }) },
      {
        name: 'a hello for the genuine device with a wrong signature', reason: /unknown, offboarded or unproven agent/,
        attack: async (c) => c.send({ t: 'hello', deviceId, signature: signBytes(null, Buffer.from(challengeMessage(await c.challenge, deviceId)), generateKeyPairSync('ed25519').privateKey).toString('base64url') }),
      },
      { name: 'a hello with a garbage signature', reason: /unknown, offboarded or unproven agent/, attack: async (c) => c.send({ t: 'hello', deviceId, signature: '%%%not base64%%%' }) },
      {
        name: 'a hello replaying the signature of an earlier challenge', reason: /unknown, offboarded or unproven agent/,
        attack: async (c) => {
          (await authenticatedAs(enrolled.intruder)).ws.close();
          await c.challenge;
          c.send(capturedHello);
        },
      },
      { name: 'a hello for an unknown device', reason: /unknown, offboarded or unproven agent/, attack: async (c) => c.send(await c.helloFor(randomUUID(), generateKeyPairSync('ed25519').privateKey)) },
      { name: 'a hello for an offboarded device, correctly signed', reason: /unknown, offboarded or unproven agent/, attack: async (c) => c.send(await c.helloFor(enrolled.offboarded.id, enrolled.offboarded.key)) },
      { name: 'no hello at all (handshake timeout)', reason: /^no hello within the handshake time$/, attack: async () => {} },
    ];

    it.each(REFUSALS)('refuses $name: a refused frame with the reason, close 1008, logged', async ({ reason, attack }) => {
      await whileTheAgentWorks(async () => {
        const client = rawClient();
        await client.challenge;
        await attack(client);
        const { code, reason: closeReason } = await client.closed;
        expect(code).toBe(1008);
        expect(closeReason).toMatch(reason);
        expect(client.frames.find((f) => f.t === 'refused')).toEqual({ t: 'refused', reason: expect.stringMatching(reason) });
        expect(client.frames.some((f) => f.t === 'welcome' || f.t === 'command')).toBe(false);
        await waitFor('the refusal in the server log', async () => (refusedInLog(reason) ? true : undefined));
      });
    });

    it(`closes a connection that sends a frame over ${AGENT_MAX_FRAME_BYTES} bytes (1009), logged`, async () => {
      await whileTheAgentWorks(async () => {
        const client = rawClient();
        await client.challenge;
        client.ws.send('x'.repeat(AGENT_MAX_FRAME_BYTES + 1));
        expect((await client.closed).code).toBe(1009);
        await waitFor('the socket error in the server log', async () => (serverLog.some((l) => l.msg === 'agent socket error') ? true : undefined));
      });
    });

    it('closes a connection that sends bytes that are not WebSocket frames (1002), logged', async () => {
      await whileTheAgentWorks(async () => {
        const client = rawClient();
        await client.challenge;
        const errors = serverLog.filter((l) => l.msg === 'agent socket error').length;
        client.raw().write(Buffer.from([0xff, 0xff, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]));
        expect((await client.closed).code).toBe(1002);
        await waitFor('the socket error in the server log', async () => (serverLog.filter((l) => l.msg === 'agent socket error').length > errors ? true : undefined));
      });
    });

    it('forgets a connection that ends in the middle of a frame', async () => {
      await whileTheAgentWorks(async () => {
        const client = rawClient();
        await client.challenge;
        // A masked text frame announcing 1000 bytes, of which 10 arrive before the connection ends.
        client.raw().end(Buffer.concat([Buffer.from([0x81, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4]), randomBytes(10)]));
        expect((await client.closed).code).toBe(1006);
      });
    });

    describe('an enrolled agent that speaks for another', () => {
      /** The genuine agent's action, in progress (a large file takes seconds to hash) while the intruder tries to end it. */
      let victim: { id: string; path: string };

      beforeAll(async () => {
        victim = await quarantineThroughServer('victim.bin', await slowFileBytes(work, 8000));
        await waitFor('the victim action to be in progress', async () => ((await ctx().services.actions.get(systemActor(), victim.id)).action.status === 'in_progress' ? true : undefined));
      });

      const signResult = (key: KeyObject, payload: Record<string, unknown>): Promise<string> =>
        new CompactSign(new TextEncoder().encode(JSON.stringify({ v: AGENT_PROTOCOL_VERSION, outcome: 'failed', error: 'forged', iat: Math.floor(Date.now() / 1000), ...payload })))
          .setProtectedHeader({ alg: 'EdDSA', typ: 'quell-result+jws' }).sign(key);

      const IMPERSONATIONS: Array<{ name: string; reason: RegExp; frame: () => Promise<AgentFrame> }> = [
        { name: 'a result for the other device\'s action', reason: /is not this device's/, frame: async () => ({ t: 'result', jws: await signResult(enrolled.intruder.key, { actionId: victim.id, deviceId: enrolled.intruder.id }) }) },
        { name: 'a result in the other device\'s name', reason: /^result is for another device$/, frame: async () => ({ t: 'result', jws: await signResult(enrolled.intruder.key, { actionId: victim.id, deviceId }) }) },
        { name: 'a result signed by a key that is not its own', reason: /^result signature does not verify/, frame: async () => ({ t: 'result', jws: await signResult(generateKeyPairSync('ed25519').privateKey, { actionId: victim.id, deviceId: enrolled.intruder.id }) }) },
        { name: 'an acknowledgement of the other device\'s action', reason: /is not this device's/, frame: async () => ({ t: 'ack', actionId: victim.id }) },
        {
          name: 'an antivirus quarantine reported in the other device\'s name', reason: /^local action report is for another device$/,
          frame: async () => ({ t: 'local_action', jws: signLocalAction(enrolled.intruder.key, { deviceId, actionId: randomUUID(), type: 'quarantine_file', entity: { name: 'x', path: '/x', sha256: 'a'.repeat(64) }, detection: 'forged', output: 'forged', at: Date.now() }) }),
        },
        {
          name: 'an antivirus quarantine report signed by a key that is not its own', reason: /^local action report signature does not verify$/,
          frame: async () => ({ t: 'local_action', jws: signLocalAction(generateKeyPairSync('ed25519').privateKey, { deviceId: enrolled.intruder.id, actionId: randomUUID(), type: 'quarantine_file', entity: { name: 'x', path: '/x', sha256: 'a'.repeat(64) }, detection: 'forged', output: 'forged', at: Date.now() }) }),
        },
      ];

      it.each(IMPERSONATIONS)('is refused for $name, and the action is untouched', async ({ reason, frame }) => {
        const client = await authenticatedAs(enrolled.intruder);
        client.send(await frame());
        const { code, reason: closeReason } = await client.closed;
        expect(code).toBe(1008);
        expect(closeReason).toMatch(reason);
        expect(refusedInLog(reason)).toBe(true);
        expect((await ctx().services.actions.get(systemActor(), victim.id)).action.status).toBe('in_progress');
      });

      it('cannot end the other device\'s action: it completes with the genuine agent\'s own result', async () => {
        const done = await settled(victim.id);
        expect(done.status, JSON.stringify(done.result)).toBe('completed');
        const { timeline } = await ctx().services.actions.get(systemActor(), victim.id);
        expect(timeline.filter((t) => t.event === 'deliver' || t.event === 'complete' || t.event === 'fail').map((t) => [t.event, t.actor]))
          .toEqual([['deliver', `agent:${deviceId}`], ['complete', `agent:${deviceId}`]]);
        expect(journalEntries(agentDir).filter((e) => e.actionId === victim.id && e.k === 'start')).toHaveLength(1);
        expect(log.count('connected')).toBe(1);
      });
    });
  });

  describe('the agent enforces only the containment state the server signed, never an older one', () => {
    const stateFile = join(agentDir, 'desired-state.json');
    const stored = () => JSON.parse(readFileSync(stateFile, 'utf8')) as { version: number; jws: string };
    const signState = (key: KeyObject, payload: StatePayload): Promise<string> =>
      new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'EdDSA', typ: 'quell-state+jws' }).sign(key);
    const statePayload = (version: number, address: string): StatePayload => ({
      v: AGENT_PROTOCOL_VERSION, kind: 'quell-state', version, containment: [{ actionId: randomUUID(), address }], antivirus: { blockSha256: [] }, iat: Math.floor(Date.now() / 1000),
    });
    const reports = () => relay.fromAgent.filter((f): f is Extract<AgentFrame, { t: 'state_applied' }> => f.t === 'state_applied')
      .map((f) => JSON.parse(Buffer.from(f.jws.split('.')[1]!, 'base64url').toString()) as StateReportPayload);
    let unmanaged: string;
    let first: { version: number; jws: string };

    beforeAll(async () => {
      unmanaged = await ctx().createDevice({ name: 'unmanaged' });
    });

    async function contain(address: string): Promise<number> {
      const before = reports().length;
      await ctx().services.actions.create(ctx().users.security_operator.actor, { type: 'contain_device', deviceId: unmanaged, source: 'manual', entity: { name: address } });
      return (await waitFor('the agent to report the new state', async () => reports()[before])).version;
    }

    it('applies a genuine state, reports it signed, and keeps it', async () => {
      const version = await contain('192.0.2.50');
      first = stored();
      expect(first.version).toBe(version);
      // The recording runner fails every command: the agent says so instead of claiming the containment holds.
      expect(reports().at(-1)).toMatchObject({ deviceId, version, error: expect.stringMatching(/^could not apply the containment rules/) });
      expect(runner.calls.at(-1)).toMatchObject({ command: 'nft' });
      await contain('192.0.2.51');
    });

    const FORGED: Array<{ name: string; reason: RegExp; forge: () => Promise<string> }> = [
      { name: 'signed by another key', reason: /state signature does not verify/, forge: () => signState(generateKeyPairSync('ed25519').privateKey, statePayload(stored().version + 1, '192.0.2.66')) },
      {
        name: 'tampered with under a genuine signature', reason: /state signature does not verify/,
        forge: async () => {
          const [header, , signature] = stored().jws.split('.');
          return `${header}.${Buffer.from(JSON.stringify(statePayload(stored().version + 1, '10.0.0.1'))).toString('base64url')}.${signature}`;
        },
      },
      { name: 'older than the one in force (a replay of a genuine state)', reason: /^state version \d+ is older than version \d+ already applied$/, forge: async () => first.jws },
      { name: 'that is garbage', reason: /state signature does not verify/, forge: async () => 'a.b.c' },
      // Signed by the genuine key, and still checked entry by entry: a compromised or buggy server cannot make the agent cut the internet off.
      ...([
        ['a range wider than /8', { network: { blockAddresses: ['10.0.0.0/7'] } }, /^state has a malformed address block list$/],
        ['an audited name that is no address', { network: { blockAddresses: [], auditAddresses: ['example.org'] } }, /^state has a malformed address block list$/],
        ['an allow list that is not a list', { network: { blockAddresses: [], allowAddresses: '192.0.2.1' } }, /^state has a malformed address block list$/],
        ['an audited hash that is no hash', { antivirus: { blockSha256: [], audit: ['../../etc/passwd'] } }, /^state has a malformed block list$/],
        ['a remediated hash that is no hash', { antivirus: { blockSha256: [], remediate: ['*'] } }, /^state has a malformed block list$/],
        ['a blocked name that is no domain name', { dns: { block: ['evil.test; rm -rf /'], audit: [], allow: [] } }, /^state has a malformed domain list$/],
        ['a domain list without its allow list', { dns: { block: ['evil.test'], audit: [] } }, /^state has a malformed domain list$/],
      ] as const).map(([what, change, reason]) => ({
        name: `signed by the server with ${what}`, reason,
        forge: () => signState(serverKey, { ...statePayload(stored().version + 1, '192.0.2.68'), ...change } as unknown as StatePayload),
      })),
    ];

    it.each(FORGED)('refuses a state $name: a rejected frame, a log line, nothing applied or kept', async ({ reason, forge }) => {
      const keep = stored();
      const calls = runner.calls.length;
      const seen = relay.fromAgent.length;
      relay.inject({ t: 'state', jws: await forge() });
      const rejected = await waitFor('the agent to reject the state', async () => relay.fromAgent.slice(seen).find((f) => f.t === 'rejected'));
      expect(rejected).toEqual({ t: 'rejected', actionId: null, reason: expect.stringMatching(reason) });
      expect(log.entries.at(-1)).toMatchObject({ level: 'warn', msg: 'desired state refused' });
      expect(runner.calls.length).toBe(calls);
      expect(stored()).toEqual(keep);
      expect(relay.fromAgent.slice(seen).filter((f) => f.t === 'state_applied')).toEqual([]);
    });

    it('refuses a state report that another agent signed or sent in another device\'s name', async () => {
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'reporter', uses: 1, expiresInDays: 1 });
      const { deviceId: reporter } = await ctx().services.agents.enrol({
        token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x },
        facts: { hostname: 'reporter', platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'raw' },
      }, null);
      const report = (who: string, key: KeyObject) => new CompactSign(new TextEncoder().encode(JSON.stringify({ v: AGENT_PROTOCOL_VERSION, deviceId: who, version: stored().version, failures: {}, iat: 0 })))
        .setProtectedHeader({ alg: 'EdDSA' }).sign(key);
      for (const [jws, reason] of [[await report(deviceId, privateKey), /^state report is for another device$/], [await report(reporter, generateKeyPairSync('ed25519').privateKey), /^state report signature does not verify$/]] as const) {
        const ws = new WebSocket(`${ctx().url.replace(/^http/, 'ws')}${API_PATHS.agentConnect}`);
        const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, why) => resolve({ code, reason: why.toString() })));
        ws.on('message', (data) => {
          const frame = JSON.parse(data.toString()) as ServerFrame;
          if (frame.t === 'challenge') ws.send(JSON.stringify({ t: 'hello', deviceId: reporter, signature: signBytes(null, Buffer.from(challengeMessage(frame.nonce, reporter)), privateKey).toString('base64url') }));
          if (frame.t === 'welcome') ws.send(JSON.stringify({ t: 'state_applied', jws }));
        });
        const { code, reason: why } = await closed;
        expect(code).toBe(1008);
        expect(why).toMatch(reason);
      }
      await ctx().services.desiredState.drain();
      const row = await ctx().store.db.selectFrom('agents').select(['state_version']).where('device_id', '=', reporter).executeTakeFirstOrThrow();
      expect(row.state_version).toBeNull();
    });
  });
});

interface Relay {
  url: string;
  /** Every frame the agent sent, in order. */
  fromAgent: AgentFrame[];
  /** Sends the agent a frame as if the server had. */
  inject(frame: ServerFrame): void;
  injectRaw(text: string): void;
  close(): Promise<void>;
}

/**
 * A man in the middle between the agent and the real server: it passes
 * enrolment and every frame through, records what the agent says, and can
 * slip its own frames into the server's stream — which is all a network
 * attacker (or a compromised proxy) can do.
 */
async function startRelay(serverUrl: string): Promise<Relay> {
  const fromAgent: AgentFrame[] = [];
  const wss = new WebSocketServer({ noServer: true });
  let toAgent: WebSocket | null = null;
  const http: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void fetch(new URL(request.url ?? '/', serverUrl), {
        method: request.method, headers: { 'content-type': request.headers['content-type'] ?? 'application/json' },
        ...(request.method === 'GET' || request.method === 'HEAD' ? {} : { body: Buffer.concat(chunks) }),
      }).then(async (upstream) => {
        response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
        response.end(Buffer.from(await upstream.arrayBuffer()));
      }, () => response.writeHead(502).end());
    });
  });
  http.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, (agentSide) => {
    const serverSide = new WebSocket(`${serverUrl.replace(/^http/, 'ws')}${request.url ?? ''}`);
    toAgent = agentSide;
    serverSide.on('message', (data) => agentSide.send(data.toString()));
    agentSide.on('message', (data) => {
      const text = data.toString();
      fromAgent.push(JSON.parse(text) as AgentFrame);
      serverSide.send(text);
    });
    serverSide.on('close', () => agentSide.close());
    agentSide.on('close', () => serverSide.close());
    serverSide.on('error', () => agentSide.terminate());
    agentSide.on('error', () => serverSide.terminate());
  }));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const send = (text: string): void => {
    if (toAgent?.readyState !== WebSocket.OPEN) throw new Error('the agent is not connected to the relay');
    toAgent.send(text);
  };
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    fromAgent,
    inject: (frame) => send(JSON.stringify(frame)),
    injectRaw: send,
    async close() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
