import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';

/** The server's TLS key and certificate, and the certificate's SHA-256 fingerprint that agents pin. */
export interface TlsMaterial { key: string; cert: string; fingerprint: string }

export const fingerprintOf = (certPem: string): string => new X509Certificate(certPem).fingerprint256;

/** An administrator's own certificate and key, as PEM files. */
export function readTlsFiles(certFile: string, keyFile: string): TlsMaterial {
  const cert = readFileSync(certFile, 'utf8');
  return { cert, key: readFileSync(keyFile, 'utf8'), fingerprint: fingerprintOf(cert) };
}

/**
 * A self-signed certificate made on first start (ECDSA P-256, valid 825
 * days) and kept root-only in the data directory next to the signing key.
 * Agents do not trust it by name: they pin its fingerprint at enrolment.
 */
export function loadOrCreateSelfSignedTls(dataDir: string, host: string): TlsMaterial {
  const dir = join(dataDir, 'keys');
  const certFile = join(dir, 'tls-cert.pem');
  const keyFile = join(dir, 'tls-key.pem');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const names = new Set(['DNS:localhost', 'IP:127.0.0.1', `DNS:${hostname()}`]);
    if (isIP(host) !== 0 && host !== '0.0.0.0' && host !== '::') names.add(`IP:${host}`);
    else if (isIP(host) === 0) names.add(`DNS:${host}`);
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '825',
        '-subj', '/CN=Quell server', '-addext', `subjectAltName=${[...names].join(',')}`, '-keyout', keyFile, '-out', certFile,
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      throw new Error(`Could not make a self-signed TLS certificate with openssl (install it, e.g. apt-get install openssl, or give QUELL_TLS_CERT and QUELL_TLS_KEY): ${(error as Error).message}`, { cause: error });
    }
  }
  chmodSync(keyFile, 0o600);
  return readTlsFiles(certFile, keyFile);
}
