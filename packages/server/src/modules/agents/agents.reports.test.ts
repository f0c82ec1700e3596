import { type KeyObject, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { AGENT_PROTOCOL_VERSION, type Ed25519PublicJwk } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

/** A compact JWS as an agent signs its reports. */
function signed(key: KeyObject, payload: unknown): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'EdDSA' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

/**
 * Drift and offboarding reports come from agents, which may be hostile:
 * each is believed only when signed by the reporting agent's own key, well
 * formed, and about its own actions; anything else is refused and changes nothing.
 */
describe(`agents' drift and offboarding reports (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  async function enrol(name: string): Promise<{ deviceId: string; key: KeyObject; publicKey: KeyObject }> {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name, uses: 1, expiresInDays: 1 });
    const { deviceId } = await ctx().services.agents.enrol({
      token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x },
      facts: { hostname: name, platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'test' },
    }, null);
    return { deviceId, key: privateKey, publicKey: createPublicKey(privateKey) };
  }
  const drift = (deviceId: string, actionIds: unknown, extra: object = {}) => ({
    v: AGENT_PROTOCOL_VERSION, deviceId, actionIds, effect: 'isolation', found: 'the isolation rules were gone', repaired: true, at: Date.now(), iat: 0, ...extra,
  });
  const driftOf = async (id: string) => (await ctx().services.actions.get(systemActor(), id)).drift;

  it('counts a drift only on the reporting device\'s own actions in force, and refuses malformed or foreign-signed reports', async () => {
    const mine = await enrol('mine');
    const other = await enrol('other');
    const own = await ctx().createAction({ type: 'isolate_device', deviceId: mine.deviceId, status: 'queued' });
    await ctx().complete(own);
    const theirs = await ctx().createAction({ type: 'isolate_device', deviceId: other.deviceId, status: 'queued' });
    await ctx().complete(theirs);
    const agents = ctx().services.agents;

    await agents.drift(mine.deviceId, mine.publicKey, signed(mine.key, drift(mine.deviceId, [own, theirs])));
    expect((await driftOf(own)).map((d) => d.count)).toEqual([1]);
    expect(await driftOf(theirs)).toEqual([]);

    const refused: Array<[string, string]> = [
      ['signed by another agent', signed(other.key, drift(mine.deviceId, [own]))],
      ['for another device', signed(mine.key, drift(other.deviceId, [own]))],
      ['ids that are not UUIDs', signed(mine.key, drift(mine.deviceId, ['../x']))],
      ['too many ids', signed(mine.key, drift(mine.deviceId, Array.from({ length: 101 }, () => own)))],
      ['an unknown effect', signed(mine.key, drift(mine.deviceId, [own], { effect: 'everything' }))],
      ['no ids', signed(mine.key, drift(mine.deviceId, []))],
      ['a payload that is not an object', signed(mine.key, null)],
      ['garbage', 'not.a.jws'],
    ];
    for (const [what, jws] of refused) await expect(agents.drift(mine.deviceId, mine.publicKey, jws), what).rejects.toThrow(/drift report/);
    expect((await driftOf(own)).map((d) => d.count)).toEqual([1]);
  });

  it('believes an offboarding report only from an agent asked to offboard, and offboarding takes a well-formed body from a Security Administrator', async () => {
    const device = await enrol('leaving');
    const report = { v: AGENT_PROTOCOL_VERSION, deviceId: device.deviceId, released: [], kept: [], failures: [], vault: { files: 0, instructions: null }, iat: 0 };
    const agents = ctx().services.agents;
    await expect(agents.offboarded(device.deviceId, device.publicKey, signed(device.key, report))).rejects.toThrow(/not asked to offboard/);

    const path = `/api/devices/${device.deviceId}/offboard`;
    expect((await ctx().request(ctx().users.security_operator, 'POST', path, {})).statusCode).toBe(403);
    for (const body of [{ releaseEffects: 'yes' }, { releaseEffects: true, also: 1 }, [1]]) {
      const response = await ctx().request(ctx().users.security_admin, 'POST', path, body);
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      expect(response.json().code).toBe('validation_failed');
    }
    expect((await ctx().request(ctx().users.security_admin, 'POST', `/api/devices/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/offboard`, {})).statusCode).toBe(404);
    expect((await ctx().request(ctx().users.security_admin, 'POST', path, { releaseEffects: false })).statusCode).toBe(200);

    await expect(agents.offboarded(device.deviceId, device.publicKey, signed(device.key, { ...report, released: 'all' }))).rejects.toThrow(/malformed/);
    await expect(agents.offboarded(device.deviceId, device.publicKey, signed(generateKeyPairSync('ed25519').privateKey, report))).rejects.toThrow(/does not verify/);
    expect((await ctx().store.db.selectFrom('agents').select('revoked_at').where('device_id', '=', device.deviceId).executeTakeFirstOrThrow()).revoked_at).toBeNull();
    await agents.offboarded(device.deviceId, device.publicKey, signed(device.key, report));
    expect((await ctx().store.db.selectFrom('agents').select('revoked_at').where('device_id', '=', device.deviceId).executeTakeFirstOrThrow()).revoked_at).not.toBeNull();
  });
});
