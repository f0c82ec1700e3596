import { type KeyObject, createHash } from 'node:crypto';
import { signMessage } from '@quell/contracts/jws';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type PeerCertificate, connect as tlsConnect } from 'node:tls';
import { API_PATHS, packageUploadMessage } from '@quell/contracts';

/**
 * How the agent reaches its server over HTTPS: it trusts exactly one
 * certificate, pinned at enrolment by its SHA-256 fingerprint, and no
 * certificate authority or host name. Over plain HTTP there is nothing to pin.
 */
export interface ServerPin { certPem: string; fingerprint: string }

/** Fingerprints compare as hex digits alone, whatever the case or separators they were typed with. */
const hexOf = (fingerprint: string): string => fingerprint.replace(/[^0-9a-f]/gi, '').toUpperCase();

/** TLS options that accept only the pinned certificate (for https, wss and the agent's uploads). */
export function pinnedTls(pin: ServerPin | undefined): { ca?: string; rejectUnauthorized: true; checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined } {
  // Verification is asked for explicitly: left unset, NODE_TLS_REJECT_UNAUTHORIZED=0 in the agent's environment would turn it off.
  if (!pin) return { rejectUnauthorized: true };
  return {
    ca: pin.certPem,
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => (hexOf(cert.fingerprint256) === hexOf(pin.fingerprint) ? undefined : new Error(`the server's certificate ${cert.fingerprint256} is not the pinned ${pin.fingerprint}`)),
  };
}

/**
 * Fetches the server's certificate without sending anything, and keeps it
 * only if its fingerprint is the one the administrator gave: the enrolment
 * token never travels to a server that is not the expected one.
 */
export function fetchPinnedCertificate(serverUrl: URL, fingerprint: string): Promise<ServerPin> {
  if (hexOf(fingerprint).length !== 64) return Promise.reject(new Error('--fingerprint must be the SHA-256 fingerprint quell server printed (64 hex digits)'));
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: serverUrl.hostname.replace(/^\[|\]$/g, ''), port: Number(serverUrl.port || 443), rejectUnauthorized: false, timeout: 10_000 });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      if (hexOf(cert.fingerprint256) !== hexOf(fingerprint)) return reject(new Error(`the server at ${serverUrl.host} presents certificate ${cert.fingerprint256}, not ${fingerprint}: refusing to enrol`));
      resolve({ certPem: `-----BEGIN CERTIFICATE-----\n${cert.raw.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END CERTIFICATE-----\n`, fingerprint: cert.fingerprint256 });
    });
    socket.once('timeout', () => socket.destroy(new Error(`no TLS answer from ${serverUrl.host}`)));
    socket.once('error', reject);
  });
}

/** One HTTP(S) request with a body, answered as status and text; HTTPS accepts only the pinned certificate. */
export function callServer(url: URL, options: { method: string; headers: Record<string, string>; body: string | Buffer; pin?: ServerPin }): Promise<{ status: number; text: string }> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method, headers: { ...options.headers, 'content-length': Buffer.byteLength(options.body) }, timeout: 60_000, ...pinnedTls(options.pin) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`${options.method} ${url.href} timed out`)));
    req.once('error', reject);
    req.end(options.body);
  });
}

/** The server answered, and refused: trying again would not change its answer. */
export class ServerRefused extends Error {}

/** Attempts at an upload that cannot reach the server, and the wait before the first retry (doubled each time). */
const UPLOAD_ATTEMPTS = 4;
const UPLOAD_RETRY_MS = 1000;

/**
 * Uploads the investigation package of an action, signed with the agent's
 * key over its SHA-256; the server keeps it with the action. When the
 * server cannot be reached, or the connection breaks before it answers, the
 * upload is sent again a few times, each time to the address `serverUrl()`
 * gives then (after a replica dies, the one the agent reconnected to); the
 * server keeps the same package sent twice as it was.
 */
export async function uploadPackage(agent: { serverUrl: () => string; deviceId: string; privateKey: KeyObject; pin?: ServerPin }, actionId: string, bytes: Buffer, retryMs = UPLOAD_RETRY_MS): Promise<void> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const signature = signMessage(agent.privateKey, packageUploadMessage(actionId, agent.deviceId, sha256));
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await callServer(new URL(API_PATHS.agentPackageUpload.replace(':id', actionId), agent.serverUrl()), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'x-quell-device': agent.deviceId, 'x-quell-signature': signature },
        body: bytes,
        pin: agent.pin,
      });
      if (response.status === 201) return;
      throw new ServerRefused(`the server refused the package (${response.status}): ${response.text}`);
    } catch (error) {
      if (error instanceof ServerRefused || attempt === UPLOAD_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, retryMs * 2 ** (attempt - 1)));
    }
  }
}
