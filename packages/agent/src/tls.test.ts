import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createTlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateSelfSignedTls, systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { startAgent } from './agent.ts';
import { recordingLog } from './test/channel.ts';
import { enrolAgent } from './enrol.ts';
import type { AgentIdentity } from './identity.ts';
import { type AgentProcess, quell, spawnAgent, waitFor, waitForAction } from './test/helper.ts';

/**
 * The server on HTTPS with a self-signed certificate made on first start;
 * agents pin that certificate by the fingerprint the administrator gives at
 * enrolment and trust nothing else, whatever name or authority it claims.
 */
describe(`agents over HTTPS with a pinned self-signed certificate (${TEST_DIALECT})`, () => {
  const work = mkdtempSync(join(tmpdir(), 'quell-tls-'));
  const tls = loadOrCreateSelfSignedTls(join(work, 'server'), '127.0.0.1');
  const impostor = loadOrCreateSelfSignedTls(join(work, 'impostor'), '127.0.0.1');
  const ctx = useTestApp({ listen: { host: '127.0.0.1', tls }, clock: liveClock() });
  const agentDir = join(work, 'agent');
  let agent: AgentProcess;
  let deviceId: string;
  const token = async () => (await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'tls', uses: 1, expiresInDays: 1 })).secret;
  const usesLeft = async (secret: string) => (await ctx().store.db.selectFrom('enrolment_tokens').select('uses_left').where('id', '=', secret.split('_')[1]!).executeTakeFirstOrThrow()).uses_left;

  beforeAll(() => {
    expect(ctx().url).toMatch(/^https:\/\//);
  });
  afterAll(async () => {
    await agent?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('keeps the certificate and its key in the data directory, the key root-only, and gives the same one on the next start', () => {
    expect(loadOrCreateSelfSignedTls(join(work, 'server'), '127.0.0.1')).toEqual(tls);
    expect(tls.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('refuses to enrol without the fingerprint, or with another one, before the token leaves the machine', async () => {
    const secret = await token();
    await expect(enrolAgent({ serverUrl: ctx().url, token: secret, dir: join(work, 'refused') })).rejects.toThrow(/needs --fingerprint/);
    await expect(enrolAgent({ serverUrl: ctx().url, token: secret, dir: join(work, 'refused'), fingerprint: impostor.fingerprint }))
      .rejects.toThrow(`presents certificate ${tls.fingerprint}, not ${impostor.fingerprint}: refusing to enrol`);
    expect(await usesLeft(secret)).toBe(1);
  });

  it('enrols with the printed fingerprint, connects over WSS and carries out an action', async () => {
    const out = await quell(['agent', 'enrol', '--server', ctx().url, '--token', await token(), '--fingerprint', tls.fingerprint.toLowerCase(), '--dir', agentDir]);
    deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(out)![1]!;
    const identity = JSON.parse(readFileSync(join(agentDir, 'identity.json'), 'utf8')) as AgentIdentity;
    expect(identity.serverCert).toEqual({ certPem: tls.cert, fingerprint: tls.fingerprint });

    agent = spawnAgent(agentDir, undefined, { bundle: true });
    const path = join(mkdtempSync(join(work, 'files-')), 'payload.elf');
    writeFileSync(path, 'malicious bytes');
    const action = await ctx().services.actions.create(ctx().users.security_operator.actor, {
      type: 'quarantine_file', deviceId, source: 'manual', entity: { name: 'payload.elf', path, sha256: createHash('sha256').update('malicious bytes').digest('hex') },
    });
    const done = await waitForAction(ctx(), action.id);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
  });

  it('does not talk to a server with another certificate, even at the same address or with NODE_TLS_REJECT_UNAUTHORIZED=0 in its environment', async () => {
    // A man in the middle with its own certificate for the same name: the agent gives up before saying anything.
    let received = 0;
    const mitm = createTlsServer({ key: impostor.key, cert: impostor.cert }, (socket) => socket.on('data', () => received++));
    await new Promise<void>((resolve) => mitm.listen(0, '127.0.0.1', resolve));
    const copy = join(work, 'redirected');
    cpSync(agentDir, copy, { recursive: true });
    const identity = JSON.parse(readFileSync(join(copy, 'identity.json'), 'utf8')) as AgentIdentity;
    writeFileSync(join(copy, 'identity.json'), JSON.stringify({ ...identity, serverUrl: `https://127.0.0.1:${(mitm.address() as AddressInfo).port}` }));
    // Verification is asked for explicitly: an environment that turns Node's default off changes nothing.
    for (const environment of [undefined, '0']) {
      const before = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      if (environment === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = environment;
      try {
        const log = recordingLog();
        const redirected = await startAgent({ dir: copy, log, runner: { run: async () => ({ code: 1, stdout: '', stderr: '' }) } });
        const refused = await waitFor('the agent to refuse the certificate', async () => log.entries.find((e) => e.msg === 'connection error'));
        // The pinned certificate is the only trust anchor, so OpenSSL itself rejects any other.
        expect(refused.fields.error, `NODE_TLS_REJECT_UNAUTHORIZED=${environment}`).toBe('self-signed certificate');
        await redirected.stop();
        expect(log.count('connected')).toBe(0);
      } finally {
        if (before === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
        else process.env.NODE_TLS_REJECT_UNAUTHORIZED = before;
      }
    }
    mitm.close();
    expect(received).toBe(0);
  });
});
