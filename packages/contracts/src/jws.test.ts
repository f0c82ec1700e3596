import { generateKeyPairSync, sign } from 'node:crypto';
import * as jose from 'jose';
import { describe, expect, it } from 'vitest';
import { signJws, signMessage, verifyJws, verifyMessage } from './jws.ts';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
/** A compact JWS over any header, signed with the right key: only the header makes it wrong. */
const signedWith = (header: object, payload: unknown = { n: 1 }): string => {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
};

describe('compact JWS', () => {
  it('verifies what it signs, and what a standard library signs the same way', async () => {
    expect(verifyJws(signJws(privateKey, { typ: 'quell-command+jws' }, { n: 1 }), publicKey)).toEqual({ payload: { n: 1 } });
    const byJose = await new jose.CompactSign(Buffer.from(JSON.stringify({ n: 2 }))).setProtectedHeader({ alg: 'EdDSA', typ: 'x' }).sign(privateKey);
    expect(verifyJws(byJose, publicKey)).toEqual({ payload: { n: 2 } });
  });

  it('refuses another key, another algorithm and critical header parameters, though the signature is right', () => {
    expect(verifyJws(signJws(other.privateKey, { typ: 't' }, { n: 1 }), publicKey)).toEqual({ problem: 'signature verification failed' });
    expect(verifyJws(signedWith({ alg: 'none' }), publicKey)).toEqual({ problem: 'algorithm "none" is not EdDSA' });
    expect(verifyJws(signedWith({ alg: 'HS256' }), publicKey)).toEqual({ problem: 'algorithm "HS256" is not EdDSA' });
    expect(verifyJws(signedWith({ typ: 't' }), publicKey)).toEqual({ problem: 'algorithm undefined is not EdDSA' });
    expect(verifyJws(signedWith({ alg: 'EdDSA', crit: ['exp'], exp: 1 }), publicKey)).toEqual({ problem: 'critical header parameters are not understood' });
    expect(verifyJws(signedWith({ alg: 'EdDSA', crit: [] }), publicKey)).toEqual({ problem: 'critical header parameters are not understood' });
  });

  it('refuses malformed parts with a problem, never an exception', () => {
    const good = signJws(privateKey, { typ: 't' }, { n: 1 });
    const [header, payload, signature] = good.split('.') as [string, string, string];
    for (const jws of [
      '', '..', `${header}.${payload}`, `${good}.${signature}`, `${header}.${payload}.${signature}=`, `${header}.${payload}.`, `${header}+.${payload}.${signature}`,
      `${b64('not json')}.${payload}.${signature}`, `${header}.${payload}.${signature.slice(0, -4)}`,
    ]) {
      const verified = verifyJws(jws, publicKey);
      expect(verified, jws).toHaveProperty('problem');
    }
    // Signed over a payload that is not JSON: the signature holds, the payload does not.
    expect(verifyJws(signedWith({ alg: 'EdDSA' }, 'not json'), publicKey)).toHaveProperty('problem');
  });

  it('signs and checks plain messages, refusing a signature of the wrong length or alphabet', () => {
    const signature = signMessage(privateKey, 'challenge');
    expect(verifyMessage(publicKey, 'challenge', signature)).toBe(true);
    expect(verifyMessage(publicKey, 'challenge!', signature)).toBe(false);
    expect(verifyMessage(other.publicKey, 'challenge', signature)).toBe(false);
    expect(verifyMessage(publicKey, 'challenge', signature.slice(0, -2))).toBe(false);
    expect(verifyMessage(publicKey, 'challenge', `${signature.slice(0, -1)}=`)).toBe(false);
  });
});
