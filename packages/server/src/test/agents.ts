import { type KeyObject, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import type { Ed25519PublicJwk } from '@quell/contracts';
import { systemActor } from '../actor.ts';
import type { TestContext } from './helper.ts';

/** An agent enrolled through the real enrolment service: its device, and the key it signs with. */
export interface TestAgent { deviceId: string; key: KeyObject; publicKey: KeyObject }

export async function enrolTestAgent(ctx: TestContext, name: string): Promise<TestAgent> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const { secret } = await ctx.services.agents.createEnrolmentToken(systemActor(), { name, uses: 1, expiresInDays: 1 });
  const { deviceId } = await ctx.services.agents.enrol({
    token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x },
    facts: { hostname: name, platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'test' },
  }, null);
  return { deviceId, key: privateKey, publicKey: createPublicKey(privateKey) };
}

/** A compact JWS as an agent signs its results and reports, whatever the payload. */
export function signedByAgent(key: KeyObject, payload: unknown): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'EdDSA' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}
