import { type KeyObject, createPublicKey, sign, verify } from 'node:crypto';
import type { Ed25519PublicJwk } from './schemas/agent.ts';

/**
 * How the agent protocol signs (`@quell/contracts/jws`, Node only): compact
 * JWS (RFC 7515) with EdDSA over Ed25519, made and checked with node:crypto
 * in place by server and agent alike — every command, state, result and
 * report, one way.
 */

const PART = /^[A-Za-z0-9_-]+$/;
const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Signs `payload` under a protected header of `alg: EdDSA` and the given type (and key id). */
export function signJws(privateKey: KeyObject, header: { typ: string; kid?: string }, payload: object): string {
  const signingInput = `${encode({ alg: 'EdDSA', ...header })}.${encode(payload)}`;
  return `${signingInput}.${sign(null, Buffer.from(signingInput), privateKey).toString('base64url')}`;
}

/**
 * The payload of a compact JWS that `publicKey` signed with EdDSA, or what
 * is wrong with it. Nothing else passes: another algorithm (`none`, a MAC),
 * critical header parameters, a part that is not base64url, a payload that
 * is not JSON.
 */
export function verifyJws(jws: string, publicKey: KeyObject): { payload: unknown } | { problem: string } {
  const parts = jws.split('.');
  if (parts.length !== 3 || !parts.every((part) => PART.test(part))) return { problem: 'not a compact JWS' };
  const [header, payload, signature] = parts as [string, string, string];
  try {
    const protectedHeader = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown; crit?: unknown };
    if (protectedHeader.alg !== 'EdDSA') return { problem: `algorithm ${JSON.stringify(protectedHeader.alg)} is not EdDSA` };
    if (protectedHeader.crit !== undefined) return { problem: 'critical header parameters are not understood' };
    if (!verify(null, Buffer.from(`${header}.${payload}`), publicKey, Buffer.from(signature, 'base64url'))) return { problem: 'signature verification failed' };
    return { payload: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) };
  } catch (error) {
    return { problem: (error as Error).message };
  }
}

/** An Ed25519 public key from its JWK, as enrolment exchanges them. */
export function publicKeyOf(jwk: Ed25519PublicJwk): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
}

/** A signature over a message both sides spell the same way (a connection challenge, an upload's digest), base64url. */
export function signMessage(privateKey: KeyObject, message: string): string {
  return sign(null, Buffer.from(message), privateKey).toString('base64url');
}

/** Whether `signature` (base64url) is `publicKey`'s Ed25519 signature over `message`. */
export function verifyMessage(publicKey: KeyObject, message: string, signature: string): boolean {
  const bytes = PART.test(signature) ? Buffer.from(signature, 'base64url') : Buffer.alloc(0);
  return bytes.length === 64 && verify(null, Buffer.from(message), publicKey, bytes);
}
