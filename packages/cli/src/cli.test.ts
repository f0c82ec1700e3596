import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, type TestDatabase, createTestDatabase } from '@quell/server/testing';

const exec = promisify(execFile);
const QUELL = new URL('../bin/quell.js', import.meta.url).pathname;

describe(`quell command line (${TEST_DIALECT})`, () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db.drop());

  const quell = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await exec(process.execPath, [QUELL, ...args], { env: { ...process.env, ...db.env } });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  it('explains every command with --help', async () => {
    const help = await quell('--help');
    expect(help.code).toBe(0);
    for (const command of ['server', 'user', 'token', 'audit']) expect(help.stdout).toContain(command);
    expect((await quell('token', 'create', '--help')).stdout).toContain('--scopes <list>');
  });

  it('adds, lists and disables users; creates and revokes tokens; all of it audited', async () => {
    const added = await quell('user', 'add', '--username', 'alice', '--role', 'security_operator', '--password', 'a long enough password');
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/Created alice \(security_operator\)/);
    expect((await quell('user', 'add', '--username', 'alice', '--role', 'security_operator', '--password', 'a long enough password')).stderr).toContain('is taken');
    expect((await quell('user', 'add', '--username', 'bob', '--role', 'chief', '--password', 'x')).code).not.toBe(0);

    const listed = JSON.parse((await quell('user', 'list', '--json')).stdout) as Array<{ username: string; disabled: boolean }>;
    expect(listed.find((u) => u.username === 'alice')).toMatchObject({ disabled: false });

    const token = await quell('token', 'create', '--user', 'alice', '--name', 'soar', '--scopes', 'actions:read,actions:decide', '--days', '7');
    expect(token.code).toBe(0);
    expect(token.stdout).toMatch(/qt_[0-9a-f-]{36}_[\w-]{43}/);
    expect((await quell('token', 'create', '--user', 'alice', '--name', 'x', '--scopes', 'users:manage')).code).not.toBe(0);
    const id = /Token ([0-9a-f-]{36})/.exec(token.stdout)![1]!;
    expect((await quell('token', 'revoke', id)).stdout).toContain(`Revoked ${id}`);

    expect((await quell('user', 'disable', 'alice')).code).toBe(0);
    const after = JSON.parse((await quell('user', 'list', '--json')).stdout) as Array<{ username: string; disabled: boolean }>;
    expect(after.find((u) => u.username === 'alice')?.disabled).toBe(true);
    expect((await quell('user', 'disable', 'nobody')).stderr).toContain('No user named nobody');

    const verified = await quell('audit', 'verify');
    expect(verified.stdout).toMatch(/Audit log intact: [4-9] entries verified/);
  }, 120_000);
});
