import { generateKeyPairSync } from 'node:crypto';
import type { Ed25519PublicJwk } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { QuellError } from '../../errors.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

const facts = (hostname: string) => ({ hostname, platform: 'linux' as const, os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'test' });
const publicKey = (): Ed25519PublicJwk => ({ kty: 'OKP', crv: 'Ed25519', x: (generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x });

describe(`enrolment with a limited-use token (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  it('agents enrolling at the same time each spend one use: exactly as many enrol as the token allows, the rest get enrolment_token_invalid', async () => {
    const { secret, token } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'fleet', uses: 5, expiresInDays: 1 });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => ctx().services.agents.enrol({ token: secret, publicKey: publicKey(), facts: facts(`host-${i}`) }, null)));

    const enrolled = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(enrolled).toHaveLength(5);
    expect(refused.map((r) => (r.reason instanceof QuellError ? r.reason.code : String(r.reason)))).toEqual(Array(3).fill('enrolment_token_invalid'));
    const row = await ctx().store.db.selectFrom('enrolment_tokens').select('uses_left').where('id', '=', token.id).executeTakeFirstOrThrow();
    expect(Number(row.uses_left)).toBe(0);
    const agents = await ctx().store.db.selectFrom('agents').select('device_id').execute();
    expect(agents).toHaveLength(5);
  });

  it('lists enrolment tokens without their secrets, and a revoked one enrols no one', async () => {
    const { secret, token } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'lab', uses: 3, expiresInDays: 1 });
    const listed = await ctx().request(ctx().users.security_admin, 'GET', '/api/enrolment-tokens');
    expect(listed.json().items.find((t: { id: string }) => t.id === token.id)).toEqual({ ...token });
    expect(listed.body).not.toContain(secret.slice(`qe_${token.id}_`.length));
    expect((await ctx().request(ctx().users.security_operator, 'DELETE', `/api/enrolment-tokens/${token.id}`)).statusCode).toBe(403);
    const revoked = await ctx().request(ctx().users.security_admin, 'DELETE', `/api/enrolment-tokens/${token.id}`);
    expect(revoked.json().revokedAt).not.toBeNull();
    await expect(ctx().services.agents.enrol({ token: secret, publicKey: publicKey(), facts: facts('late') }, null)).rejects.toMatchObject({ code: 'enrolment_token_invalid' });
    expect((await ctx().request(ctx().users.security_admin, 'DELETE', '/api/enrolment-tokens/01900000-0000-7000-8000-000000000000')).json().code).toBe('token_not_found');
  });
});
