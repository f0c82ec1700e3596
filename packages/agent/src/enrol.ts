import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces, release } from 'node:os';
import { API_PATHS, type DeviceFacts, type EnrolResponse, type Ed25519PublicJwk } from '@quell/contracts';
import { saveIdentity } from './identity.ts';

export const AGENT_VERSION = '0.1.0';

/** What the agent tells the server about its device. */
export function deviceFacts(): DeviceFacts {
  const interfaces = Object.values(networkInterfaces()).flat().filter((i) => i !== undefined && !i.internal);
  let os = 'Linux';
  try {
    os = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    // no os-release: keep the generic name
  }
  return {
    hostname: hostname(),
    platform: 'linux',
    os,
    kernel: release(),
    ips: [...new Set(interfaces.map((i) => i!.address))].slice(0, 64),
    macs: [...new Set(interfaces.map((i) => i!.mac).filter((m) => m !== '00:00:00:00:00:00'))].slice(0, 64),
    agentVersion: AGENT_VERSION,
  };
}

/**
 * Registers a new agent identity with an enrolment token: makes its Ed25519
 * key pair and sends the public half with the device facts. The private key
 * never leaves the caller.
 */
export async function registerAgent(options: { serverUrl: string; token: string; facts: DeviceFacts; label?: string }): Promise<{ enrolled: EnrolResponse; privateKey: KeyObject }> {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk;
  const response = await fetch(new URL(API_PATHS.agentEnrol, options.serverUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: options.token, publicKey: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, facts: options.facts }),
  });
  const body = (await response.json().catch(() => ({}))) as EnrolResponse & { detail?: string };
  if (response.status !== 201) throw new Error(`${options.label ?? 'enrolment'} refused (${response.status}): ${body.detail ?? 'no detail'}`);
  return { enrolled: body, privateKey };
}

/**
 * Enrols this machine: registers it, pins the server's command-signing key,
 * and stores the identity root-only.
 */
export async function enrolAgent(options: { serverUrl: string; token: string; dir: string }): Promise<EnrolResponse> {
  const { enrolled, privateKey } = await registerAgent({ serverUrl: options.serverUrl, token: options.token, facts: deviceFacts() });
  saveIdentity(options.dir, {
    serverUrl: options.serverUrl,
    deviceId: enrolled.deviceId,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    serverKey: enrolled.serverKey,
    serverKeyId: enrolled.serverKeyId,
  });
  return enrolled;
}
