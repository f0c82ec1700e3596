import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { type AgentProcess, quell, spawnAgent, waitForAction } from './test/helper.ts';

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

describe(`a real agent process over a real WebSocket (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
  const work = mkdtempSync(join(tmpdir(), 'quell-agent-'));
  const agentDir = join(work, 'agent');
  let agent: AgentProcess;
  let deviceId: string;

  beforeAll(async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'lab', uses: 1, expiresInDays: 1 });
    const out = await quell(['agent', 'enrol', '--server', ctx().url, '--token', secret, '--dir', agentDir]);
    deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(out)![1]!;
    agent = spawnAgent(agentDir);
  });
  afterAll(async () => {
    await agent?.stop();
    if (process.env.QUELL_TEST_VERBOSE) process.stdout.write(agent.log());
    rmSync(work, { recursive: true, force: true });
  });

  const actionStatus = (id: string, wanted: string[]) => waitForAction(ctx(), id, wanted);

  it('enrols: the device is listed, the identity is root-only, and the token cannot be used twice', async () => {
    const devices = (await ctx().request(ctx().users.security_reader, 'GET', '/api/devices')).json().items;
    expect(devices.map((d: { id: string }) => d.id)).toContain(deviceId);
    expect(statSync(join(agentDir, 'identity.json')).mode & 0o777).toBe(0o600);
    expect(statSync(agentDir).mode & 0o777).toBe(0o700);
    const again = await ctx().request(null, 'POST', '/agent/v1/enrol', {
      token: 'qe_00000000-0000-7000-8000-000000000000_' + 'A'.repeat(43),
      publicKey: { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) },
      facts: { hostname: 'x', platform: 'linux', os: 'x', kernel: 'x', ips: [], macs: [], agentVersion: '0' },
    });
    expect(again.statusCode).toBe(401);
    expect(again.json().code).toBe('enrolment_token_invalid');
  });

  it('shows the device online with its facts while connected, and a queued action waiting with the last-seen time once it is not', async () => {
    const device = (await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${deviceId}`)).json();
    expect(device).toMatchObject({ health: 'online', platform: 'linux', agent: { agentVersion: '0.1.0' } });
    expect(device.agent.kernel.length).toBeGreaterThan(0);
    const unmanaged = await ctx().createDevice();
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${unmanaged}`)).json().health).toBe('unmanaged');
    const queued = await ctx().createAction({ deviceId: unmanaged, status: 'queued' });
    const detail = (await ctx().request(ctx().users.security_reader, 'GET', `/api/actions/${queued}`)).json();
    expect(detail.waiting.reason).toContain('the device has none enrolled');

    // The agent stops; a minute later its device is offline and new work waits for it, saying since when.
    await agent.stop();
    ctx().clock.advance(60_000);
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${deviceId}`)).json().health).toBe('offline');
    const missing = join(work, 'gone.bin');
    const created = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', { type: 'quarantine_file', deviceId, source: 'manual', entity: { name: 'gone.bin', path: missing, sha256: 'a'.repeat(64) } });
    const seen = (await ctx().request(ctx().users.security_reader, 'GET', `/api/actions/${created.json().id}`)).json();
    expect(seen.action.status).toBe('queued');
    expect(seen.waiting.reason).toMatch(/^Waiting for device, last seen \d{4}-.*; times out \d{4}-/);
    ctx().clock.set(Date.now());

    // As soon as it is back, the waiting action reaches it.
    agent = spawnAgent(agentDir);
    const done = await actionStatus(created.json().id, ['completed', 'failed']);
    expect(done.result?.error).toBe(`no file at ${missing}`);
  });

  it('quarantines a real file and restores the identical file with its mode, owner and times', async () => {
    const dir = mkdtempSync(join(work, 'files-'));
    const path = join(dir, 'invoice.pdf.elf');
    const content = Buffer.from(`#!/bin/sh\necho pwned ${Date.now()}\n`);
    writeFileSync(path, content);
    chmodSync(path, 0o751);
    chownSync(path, 65534, 65534);
    utimesSync(path, new Date('2026-01-02T03:04:05Z'), new Date('2026-01-02T03:04:05Z'));
    const before = statSync(path);

    const created = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', {
      type: 'quarantine_file', deviceId, source: 'manual', entity: { name: 'invoice.pdf.elf', path, sha256: sha256(content) }, comment: 'malware',
    });
    expect(created.statusCode).toBe(201);
    const done = await actionStatus(created.json().id, ['completed', 'failed']);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    expect(existsSync(path)).toBe(false);
    const vaultFile = join(agentDir, 'vault', done.id);
    expect(statSync(vaultFile).mode & 0o777).toBe(0);
    expect(sha256(readFileSync(vaultFile))).toBe(sha256(content));

    const undo = await ctx().request(ctx().users.security_admin, 'POST', '/api/actions/undo', { ids: [done.id], comment: 'false positive' });
    expect(undo.statusCode).toBe(200);
    const restored = await actionStatus(undo.json().items[0].id, ['completed', 'failed']);
    expect(restored.status, JSON.stringify(restored.result)).toBe('completed');
    expect((await actionStatus(done.id, ['undone'])).status).toBe('undone');
    const after = statSync(path);
    expect(sha256(readFileSync(path))).toBe(sha256(content));
    expect([after.mode, after.uid, after.gid, after.mtimeMs]).toEqual([before.mode, before.uid, before.gid, before.mtimeMs]);
  });

  it('refuses to restore over a different file that appeared at the path since', async () => {
    const path = join(mkdtempSync(join(work, 'files-')), 'dropper');
    writeFileSync(path, 'first');
    const created = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', {
      type: 'stop_and_quarantine_file', deviceId, source: 'manual', entity: { name: path, path, sha256: sha256('first') },
    });
    const done = await actionStatus(created.json().id, ['completed', 'failed']);
    expect(done.status).toBe('completed');
    writeFileSync(path, 'someone else’s file');
    const undo = (await ctx().request(ctx().users.security_admin, 'POST', '/api/actions/undo', { ids: [done.id] })).json().items[0];
    const failed = await actionStatus(undo.id, ['completed', 'failed']);
    expect(failed.status).toBe('failed');
    expect(failed.result?.error).toContain('a different file now exists');
    expect(readFileSync(path, 'utf8')).toBe('someone else’s file');
    expect((await ctx().services.actions.get(ctx().users.security_reader.actor, done.id)).action).toMatchObject({ status: 'completed', undoneBy: null });
  });

  it('refuses a file whose hash is not the one approved, leaving it in place', async () => {
    const path = join(mkdtempSync(join(work, 'files-')), 'report.docx');
    writeFileSync(path, 'an innocent document');
    const created = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', {
      type: 'quarantine_file', deviceId, source: 'manual', entity: { name: path, path, sha256: sha256('malware') },
    });
    const failed = await actionStatus(created.json().id, ['completed', 'failed']);
    expect(failed.status).toBe('failed');
    expect(failed.result?.error).toMatch(/has SHA-256 [0-9a-f]{64}, not/);
    expect(readFileSync(path, 'utf8')).toBe('an innocent document');
  });

  it('collects an investigation package that permitted users can download, and nobody can replace', async () => {
    const created = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', { type: 'collect_investigation_package', deviceId, source: 'manual', entity: { name: 'device' } });
    const done = await actionStatus(created.json().id, ['completed', 'failed']);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/actions/${done.id}/package`)).statusCode).toBe(403);
    const download = await ctx().app.inject({ method: 'GET', url: `/api/actions/${done.id}/package`, headers: ctx().as(ctx().users.security_operator) });
    expect(download.statusCode).toBe(200);
    expect(download.headers['content-type']).toBe('application/gzip');
    const listing = execFileSync('tar', ['-tzf', '-'], { input: download.rawPayload }).toString();
    for (const file of ['processes.txt', 'network-tcp.txt', 'users.txt', 'cron.txt', 'kernel-modules.txt', 'auth-log.txt', 'packages.txt']) expect(listing).toContain(file);
    const processes = execFileSync('tar', ['-xzOf', '-', './processes.txt'], { input: download.rawPayload }).toString();
    expect(processes).toMatch(/PID\s+PPID/);
    const replaced = await ctx().app.inject({
      method: 'PUT', url: `/agent/v1/actions/${done.id}/package`, payload: Buffer.from('forged'),
      headers: { 'content-type': 'application/octet-stream', 'x-quell-device': deviceId, 'x-quell-signature': 'A'.repeat(86) },
    });
    expect(replaced.statusCode).toBe(401);
    expect(replaced.json().code).toBe('agent_signature_invalid');
  });
});
