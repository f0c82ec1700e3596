import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { type RunningAgent, startAgent } from './agent.ts';
import { recordingLog, recordingRunner, sha256OfFile } from './test/channel.ts';
import { enrolAgent } from './enrol.ts';
import { waitForAction } from './test/helper.ts';

/**
 * The server's general rate limit counts API callers, never agents: an agent
 * behind the same address as a client that used up its budget still enrols,
 * connects over the WebSocket channel and carries out its commands.
 */
describe(`agents are not held back by the API rate limit (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock(), app: { rateLimit: { max: 3, windowSeconds: 600 } } });
  const work = mkdtempSync(join(tmpdir(), 'quell-rate-limit-'));
  let agent: RunningAgent | undefined;
  afterAll(async () => {
    await agent?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('enrols, connects and completes a quarantine from an address whose API budget is spent', async () => {
    const api = () => fetch(`${ctx().url}/api/openapi.json`);
    for (let i = 0; i < 3; i++) expect((await api()).status).toBe(200);
    const limited = await api();
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);

    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'behind the same address', uses: 1, expiresInDays: 1 });
    const dir = join(work, 'agent');
    const { deviceId } = await enrolAgent({ serverUrl: ctx().url, token: secret, dir });
    agent = await startAgent({ dir, runner: recordingRunner(), log: recordingLog() });
    await agent.connected();

    const path = join(work, 'payload.elf');
    writeFileSync(path, `malicious ${randomUUID()}`);
    const action = await ctx().services.actions.create(ctx().users.security_operator.actor, {
      type: 'quarantine_file', deviceId, source: 'manual', entity: { name: 'payload.elf', path, sha256: await sha256OfFile(path) },
    });
    const done = await waitForAction(ctx(), action.id);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    expect(() => readFileSync(path)).toThrow(/ENOENT/);
    // The API budget of that address is still spent: the agent got through because it is not counted.
    expect((await api()).status).toBe(429);
  });
});
