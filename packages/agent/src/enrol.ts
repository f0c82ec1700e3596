import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hostname, networkInterfaces, release } from 'node:os';
import { API_PATHS, type DeviceFacts, type EnrolResponse, type Ed25519PublicJwk } from '@quell/contracts';
import { loadIdentity, saveIdentity, serverUrlsOf } from './identity.ts';
import { OFFBOARDED_MARKER } from './offboard.linux.ts';
import { type ServerPin, callServer, fetchPinnedCertificate } from './transport.ts';

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

/** The server said no to an enrolment: its status and, in words, why. */
export class EnrolmentRefused extends Error {
  constructor(label: string, readonly status: number, readonly detail: string) {
    super(`${label} refused (${status}): ${detail}`);
  }
}

/**
 * Registers a new agent identity with an enrolment token: makes its Ed25519
 * key pair and sends the public half with the device facts. The private key
 * never leaves the caller.
 */
export async function registerAgent(options: { serverUrl: string; token: string; facts: DeviceFacts; label?: string; pin?: ServerPin }): Promise<{ enrolled: EnrolResponse; privateKey: KeyObject }> {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk;
  const response = await callServer(new URL(API_PATHS.agentEnrol, options.serverUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: options.token, publicKey: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, facts: options.facts }),
    pin: options.pin,
  });
  let body: EnrolResponse & { detail?: string };
  try {
    body = JSON.parse(response.text) as typeof body;
  } catch {
    body = {} as typeof body;
  }
  if (response.status !== 201) throw new EnrolmentRefused(options.label ?? 'enrolment', response.status, body.detail ?? 'no detail');
  return { enrolled: body, privateKey };
}

/**
 * The server's addresses as an operator gives them: one URL, or its
 * replicas' URLs separated by commas. All of one protocol: over HTTPS the
 * replicas present one pinned certificate.
 */
export function parseServerUrls(list: string): string[] {
  const urls = [...new Set(list.split(',').map((part) => part.trim()).filter(Boolean))];
  if (urls.length === 0) throw new Error("--server needs the Quell server URL, or its replicas' URLs separated by commas");
  for (const text of urls) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new Error(`--server: ${JSON.stringify(text)} is not a URL (https://quell.example:8443)`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('--server must be an https:// (or, on a trusted network, http://) URL');
    if (url.protocol !== new URL(urls[0]!).protocol) throw new Error("--server: the replicas' URLs must all be https:// or all http://");
  }
  return urls;
}

/**
 * Enrols this machine: pins the server's TLS certificate (HTTPS needs the
 * fingerprint the server printed), registers, pins the server's
 * command-signing key, and stores the identity root-only. `serverUrl` may
 * list the server's replicas, separated by commas: the agent enrols at the
 * first and dials any of them afterwards.
 */
export async function enrolAgent(options: { serverUrl: string; token: string; dir: string; fingerprint?: string }): Promise<EnrolResponse> {
  const serverUrls = parseServerUrls(options.serverUrl);
  const url = new URL(serverUrls[0]!);
  if (url.protocol === 'https:' && !options.fingerprint) throw new Error('an https server needs --fingerprint: the TLS certificate fingerprint that quell server printed');
  const pin = url.protocol === 'https:' ? await fetchPinnedCertificate(url, options.fingerprint!) : undefined;
  const { enrolled, privateKey } = await registerAgent({ serverUrl: serverUrls[0]!, token: options.token, facts: deviceFacts(), pin });
  saveIdentity(options.dir, {
    ...(pin ? { serverCert: pin } : {}),
    serverUrl: serverUrls[0]!,
    ...(serverUrls.length > 1 ? { serverUrls } : {}),
    deviceId: enrolled.deviceId,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    serverKey: enrolled.serverKey,
    serverKeyId: enrolled.serverKeyId,
  });
  // Enrolled again after an offboarding: the agent runs again.
  rmSync(join(options.dir, OFFBOARDED_MARKER), { force: true });
  return enrolled;
}

/**
 * Gives an enrolled agent the server's addresses anew (a replica added or
 * moved, when no load balancer stands in front): the same list syntax as at
 * enrolment, of the protocol it enrolled with, since its pinned certificate
 * and key stay what they are. The agent reads it when it next starts.
 */
export function setServerUrls(dir: string, list: string): string[] {
  const identity = loadIdentity(dir);
  const serverUrls = parseServerUrls(list);
  const enrolledWith = new URL(identity.serverUrl).protocol;
  if (new URL(serverUrls[0]!).protocol !== enrolledWith) throw new Error(`--server: this agent enrolled over ${enrolledWith.replace(':', '')} and keeps its pinned certificate; give ${enrolledWith}// URLs, or enrol again`);
  saveIdentity(dir, { ...identity, serverUrls });
  return serverUrlsOf({ ...identity, serverUrls });
}
