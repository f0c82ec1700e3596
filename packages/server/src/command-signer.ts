import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_PROTOCOL_VERSION, type CommandPayload, type Ed25519PublicJwk, type OffboardPayload, type StatePayload } from '@quell/contracts';
import { signJws } from '@quell/contracts/jws';

export interface CommandSigner {
  publicJwk: Ed25519PublicJwk;
  keyId: string;
  sign(command: Omit<CommandPayload, 'v' | 'iat' | 'nonce'>, now: number): Promise<string>;
  /** The desired state of one version, signed once for all the agents it is for. */
  signState(state: Pick<StatePayload, 'version' | 'containment' | 'antivirus' | 'network' | 'dns'>, now: number): string;
  signOffboard(offboard: Pick<OffboardPayload, 'deviceId' | 'releaseEffects'>, now: number): string;
}

/**
 * The server's Ed25519 command-signing key, kept in the data directory with
 * root-only permissions — never in the database, so that a stolen or edited
 * database row cannot yield a command an agent would accept. Replicas that
 * share a PostgreSQL database share this file too.
 */
export function loadOrCreateSigningKey(dataDir: string): KeyObject {
  const file = join(dataDir, 'keys', 'command-signing-key.pem');
  if (!existsSync(file)) {
    mkdirSync(join(dataDir, 'keys'), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  return createPrivateKey(readFileSync(file));
}

/** The key id is the key's RFC 7638 thumbprint, which the server prints for agents' owners to compare. */
export function createCommandSigner(privateKey: KeyObject = generateKeyPairSync('ed25519').privateKey): CommandSigner {
  const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' }) as Ed25519PublicJwk;
  const keyId = createHash('sha256').update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x: publicJwk.x })).digest('base64url');
  const signed = (typ: string, payload: object): string => signJws(privateKey, { kid: keyId, typ }, payload);
  return {
    publicJwk: { kty: 'OKP', crv: 'Ed25519', x: publicJwk.x },
    keyId,
    async sign(command, now) {
      const payload: CommandPayload = { v: AGENT_PROTOCOL_VERSION, ...command, iat: Math.floor(now / 1000), nonce: randomBytes(16).toString('base64url') };
      return signed('quell-command+jws', payload);
    },
    signState(state, now) {
      const payload: StatePayload = { v: AGENT_PROTOCOL_VERSION, kind: 'quell-state', ...state, iat: Math.floor(now / 1000) };
      return signed('quell-state+jws', payload);
    },
    signOffboard(offboard, now) {
      const payload: OffboardPayload = { v: AGENT_PROTOCOL_VERSION, kind: 'quell-offboard', ...offboard, iat: Math.floor(now / 1000) };
      return signed('quell-offboard+jws', payload);
    },
  };
}
