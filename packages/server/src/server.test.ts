import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const QUELL = new URL('../../cli/bin/quell.js', import.meta.url).pathname;

/** Starts `quell server` on a SQLite data directory and a free port; resolves once it prints its address. */
async function startQuell(dataDir: string): Promise<{ child: ChildProcessWithoutNullStreams; url: string; output: () => string }> {
  const child = spawn(process.execPath, [QUELL, 'server'], { env: { ...process.env, QUELL_DATA_DIR: dataDir, QUELL_PORT: '0', QUELL_LOG_LEVEL: 'info' } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`quell server did not start:\n${output}`)), 30_000);
    child.stdout.on('data', () => {
      const match = /Quell is running at (http:\/\/[\d.:]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  return { child, url, output: () => output };
}

describe('quell server', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'quell-server-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('starts on SQLite, prints the one-time admin password that signs in, and on SIGTERM finishes the request in flight', async () => {
    const { child, url, output } = await startQuell(dataDir);
    const password = /One-time password: (\S+)/.exec(output())![1]!;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const body = JSON.stringify({ username: 'admin', password });

    // Send the headers and half the body, stop the server, then send the rest.
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      });
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => {
        child.kill('SIGTERM');
        setTimeout(() => req.end(body.slice(10)), 500);
      }, 200);
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const answered = await response;
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.body).user.username).toBe('admin');
    expect(await exited).toBe(0);
    expect(output()).toContain('"msg":"Quell stopped"');
  });

  it('does not create a second administrator on restart', async () => {
    const { child, url, output } = await startQuell(dataDir);
    expect(output()).not.toContain('One-time password');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
