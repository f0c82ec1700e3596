import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Ed25519PublicJwk } from '@quell/contracts';
import type { ServerPin } from './transport.ts';

/** What an enrolled agent knows about itself and its server; root-only on disk. */
export interface AgentIdentity {
  /** The address the agent enrolled at. */
  serverUrl: string;
  /**
   * Every address of the server when it runs as replicas (the enrolment
   * address among them); the agent dials them in turn. Absent: `serverUrl` alone.
   */
  serverUrls?: string[];
  deviceId: string;
  /** The agent's Ed25519 private key, PKCS#8 PEM. */
  privateKeyPem: string;
  /** The server's command-signing key, pinned at enrolment: nothing else is trusted. */
  serverKey: Ed25519PublicJwk;
  serverKeyId: string;
  /** Over HTTPS: the server's certificate, pinned at enrolment; it alone is trusted. */
  serverCert?: ServerPin;
}

/** The addresses the agent may dial. */
export const serverUrlsOf = (identity: AgentIdentity): string[] => (identity.serverUrls?.length ? identity.serverUrls : [identity.serverUrl]);

export { DEFAULT_AGENT_DIR } from '@quell/contracts';

export function ensureAgentDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export function saveIdentity(dir: string, identity: AgentIdentity): void {
  ensureAgentDir(dir);
  const file = join(dir, 'identity.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(identity, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function loadIdentity(dir: string): AgentIdentity {
  const file = join(dir, 'identity.json');
  if (!existsSync(file)) throw new Error(`No agent identity in ${dir}: enrol first with quell agent enrol --server URL --token T`);
  return JSON.parse(readFileSync(file, 'utf8')) as AgentIdentity;
}
