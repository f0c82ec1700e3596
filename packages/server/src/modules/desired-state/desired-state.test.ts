import { generateKeyPairSync } from 'node:crypto';
import { AGENT_PROTOCOL_VERSION, DEVICE_OFFLINE_AFTER_MS, type Ed25519PublicJwk, type StatePayload } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

/**
 * How a containment action moves from its agents' reports: the reports are
 * handed to the service as the gateway does once their signatures held.
 */
describe(`containment lifecycle from agents' reports (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  async function enrol(name: string): Promise<string> {
    const { publicKey } = generateKeyPairSync('ed25519');
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name, uses: 1, expiresInDays: 1 });
    const { deviceId } = await ctx().services.agents.enrol({
      token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x },
      facts: { hostname: name, platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'test' },
    }, null);
    return deviceId;
  }
  const report = (deviceId: string, version: number, failures: Record<string, string> = {}) =>
    ctx().services.desiredState.report(deviceId, { v: AGENT_PROTOCOL_VERSION, deviceId, version, failures, iat: 0 });
  const detail = (id: string) => ctx().services.actions.get(systemActor(), id);
  const signedState = async () => {
    const state = (await ctx().services.desiredState.current(null))!;
    return { version: state.version, payload: JSON.parse(Buffer.from(state.jws.split('.')[1]!, 'base64url').toString()) as StatePayload };
  };

  it('waits for online agents, completes without offline ones, and keeps their failures with the reason', async () => {
    const [a, b, c] = [await enrol('a'), await enrol('b'), await enrol('c')];
    const target = await ctx().createDevice({ name: 'camera' });
    const id = await ctx().createAction({ type: 'contain_device', deviceId: target, entity: { name: '203.0.113.9' }, parameters: { mac: '52:54:00:aa:bb:cc' }, status: 'queued' });
    const { version, payload } = await signedState();
    expect(payload.containment).toEqual([{ actionId: id, address: '203.0.113.9', mac: '52:54:00:aa:bb:cc' }]);
    expect((await detail(id)).waiting?.reason).toBe('Waiting for 3 online agents to apply it');

    report(a, version);
    report(b, version, { [id]: '203.0.113.9 is this device itself' });
    await ctx().services.desiredState.drain();
    let seen = await detail(id);
    expect(seen.action.status).toBe('in_progress');
    expect(seen.enforcement).toEqual({ succeeded: 1, failed: 1, waiting: 1, waitingOnline: 1, failures: [{ deviceId: b, deviceName: 'b', reason: '203.0.113.9 is this device itself' }] });

    // c goes quiet: once it counts as offline the containment is complete, and c applies it when it is back.
    ctx().clock.advance(DEVICE_OFFLINE_AFTER_MS + 1000);
    await ctx().services.agents.touch([a, b]);
    expect(await ctx().services.desiredState.settle()).toBe(1);
    seen = await detail(id);
    expect(seen.action.status).toBe('completed');
    expect(seen.action.result?.output).toBe('Contained 203.0.113.9 on 1 of 3 managed devices; 1 could not (b: 203.0.113.9 is this device itself); 1 offline will apply it when they reconnect');
    report(c, version);
    await ctx().services.desiredState.drain();
    expect((await detail(id)).enforcement).toMatchObject({ succeeded: 2, failed: 1, waiting: 0 });

    // An older report never overwrites a newer one.
    report(a, version - 1);
    await ctx().services.desiredState.drain();
    expect((await detail(id)).enforcement).toMatchObject({ succeeded: 2 });
  });

  it('a release takes the address out of the next state; a cancelled release puts it back', async () => {
    const target = await ctx().createDevice({ name: 'nas' });
    const id = await ctx().createAction({ type: 'contain_device', deviceId: target, entity: { name: '203.0.113.10' }, status: 'queued' });
    await ctx().complete(id);
    expect((await signedState()).payload.containment.map((e) => e.address)).toContain('203.0.113.10');
    const [release] = await ctx().services.actions.undo(ctx().users.security_operator.actor, { ids: [id] });
    const afterRelease = await signedState();
    expect(afterRelease.payload.containment.map((e) => e.address)).not.toContain('203.0.113.10');
    expect((await detail(release!.id)).action.status).toBe('queued');
    await ctx().services.actions.cancel(ctx().users.security_operator.actor, { ids: [release!.id] });
    const afterCancel = await signedState();
    expect(afterCancel.version).toBeGreaterThan(afterRelease.version);
    expect(afterCancel.payload.containment.map((e) => e.address)).toContain('203.0.113.10');
  });

  it('refuses what is not an address to contain', async () => {
    const target = await ctx().createDevice();
    for (const [entity, parameters] of [[{ name: 'printer.local' }, {}], [{ name: '203.0.113.11' }, { mac: 'not-a-mac' }]] as const) {
      const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', { type: 'contain_device', deviceId: target, source: 'manual', entity, parameters });
      expect(response.statusCode).toBe(400);
      expect(response.json().code).toBe('validation_failed');
    }
  });

  it('carries block, audit and allow indicators by every hash, address, domain and URL, each group with those in its scope', async () => {
    const admin = ctx().users.security_admin;
    const group = (await ctx().services.devices.createGroup(admin.actor, { name: 'finance', rank: 1, automationLevel: 'semi_any_folder' })).id;
    const [sha256, sha1, md5, finance, audited] = ['a1'.repeat(32), 'b2'.repeat(20), 'c3'.repeat(16), 'd4'.repeat(20), 'e5'.repeat(16)];
    const indicators = [
      ['sha256', sha256, [], 'block'], ['sha1', sha1, [], 'block_and_remediate'], ['md5', md5.toUpperCase(), [], 'block'], ['sha1', finance, [group], 'block'],
      ['md5', audited, [group], 'audit'], ['ip', '192.0.2.0/24', [], 'audit'], ['ip', '198.51.100.7', [group], 'block'], ['ip', '198.51.100.8', [], 'allow'],
      ['domain', 'Evil.test', [], 'block'], ['url', 'https://phish.test/login', [group], 'audit'], ['url', 'http://203.0.113.5/payload', [], 'block'], ['domain', 'ok.evil.test', [], 'allow'],
    ] as const;
    for (const [type, value, groups, action] of indicators) {
      expect((await ctx().request(admin, 'POST', '/api/indicators', { type, value, action, title: `${action} ${type}`, deviceGroupIds: groups })).statusCode).toBe(201);
    }
    const state = async (groupId: string | null) => {
      const signed = (await ctx().services.desiredState.current(groupId))!;
      const payload = JSON.parse(Buffer.from(signed.jws.split('.')[1]!, 'base64url').toString()) as StatePayload;
      return { antivirus: payload.antivirus, network: payload.network, dns: payload.dns };
    };
    expect(await state(null)).toEqual({
      // Only the SHA-1's indicator blocks and remediates: a refused execution of that file alone is quarantined.
      antivirus: { blockSha256: [sha256], blockSha1: [sha1], blockMd5: [md5], remediate: [sha1], audit: [] },
      network: { blockAddresses: [], allowAddresses: ['198.51.100.8'], auditAddresses: ['192.0.2.0/24'] },
      // A URL is enforced at its host name; one whose host is an address has no name to refuse.
      dns: { block: ['evil.test'], audit: [], allow: ['ok.evil.test'] },
    });
    expect(await state(group)).toEqual({
      antivirus: { blockSha256: [sha256], blockSha1: [sha1, finance].sort(), blockMd5: [md5], remediate: [sha1], audit: [audited] },
      network: { blockAddresses: ['198.51.100.7'], allowAddresses: ['198.51.100.8'], auditAddresses: ['192.0.2.0/24'] },
      dns: { block: ['evil.test'], audit: ['phish.test'], allow: ['ok.evil.test'] },
    });
  });

  it('signs a new version without a block indicator once it expires by time, once', async () => {
    const admin = ctx().users.security_admin;
    const hash = 'e5'.repeat(32);
    const expiresAt = new Date(ctx().clock.now() + 3_600_000).toISOString();
    expect((await ctx().request(admin, 'POST', '/api/indicators', { type: 'sha256', value: hash, action: 'block', title: 'for an hour', expiresAt })).statusCode).toBe(201);
    const before = await signedState();
    expect(before.payload.antivirus.blockSha256).toContain(hash);
    expect(await ctx().services.indicators.liftExpired()).toBe(false);
    ctx().clock.advance(3_600_001);
    expect(await ctx().services.indicators.liftExpired()).toBe(true);
    const after = await signedState();
    expect(after.version).toBe(before.version + 1);
    expect(after.payload.antivirus.blockSha256).not.toContain(hash);
    expect(await ctx().services.indicators.liftExpired()).toBe(false);
  });
});
