import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandPayload } from '@quell/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT } from '@quell/server/testing';
import { agentLogLines } from './test/channel.ts';
import { type Answer, type HostileServer, startHostileServer } from './test/hostile-server.ts';
import { type AgentProcess, spawnAgent, waitFor } from './test/helper.ts';

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');
const sha256Of = (path: string): string => sha256(readFileSync(path));
/** How long the agent may take to answer a trivial command while it is busy with hostile ones: it must never stall. */
const LIVENESS_MS = 2000;

/** The reason an answer gives for not doing the action: a refusal of the command, or a failed result. */
function refusal(answer: Answer): string {
  if (answer.t === 'rejected') return answer.reason;
  if (answer.result.outcome === 'failed') return answer.result.error ?? '';
  throw new Error(`the action was carried out: ${answer.result.output}`);
}
const completed = (answer: Answer): string => {
  if (answer.t !== 'result' || answer.result.outcome !== 'completed') throw new Error(`not completed: ${JSON.stringify(answer)}`);
  return answer.result.output ?? '';
};

/**
 * A real agent process, in its own mount namespace (its /etc is a copy),
 * handed commands a compromised server could sign: paths through links,
 * kernel files, guarded targets, ids that are paths, oversized and endless
 * inputs, and kills in the middle of moves across file systems. Each is
 * refused with its reason and leaves nothing done, and the agent keeps
 * answering throughout.
 */
describe(`a real agent refuses what would harm the endpoint or itself (${TEST_DIALECT})`, () => {
  const work = mkdtempSync(join(tmpdir(), 'quell-hostile-'));
  const etc = join(work, 'etc');
  const files = join(work, 'files');
  /** A second file system (tmpfs), for moves across file systems. */
  const other = join(work, 'other');
  const agentDir = join(work, 'agent');
  let server: HostileServer;
  let agent: AgentProcess;

  const start = async (): Promise<void> => {
    agent = spawnAgent(agentDir, undefined, { bundle: true, sandbox: { etc } });
    await waitFor('the agent to connect', async () => (agentLogLines(agent.log()).some((l) => l.msg === 'connected') ? true : undefined));
    await server.connected();
  };

  beforeAll(async () => {
    execFileSync('cp', ['-a', '/etc', etc]);
    mkdirSync(files);
    mkdirSync(other);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1g', 'quelltest', other]);
    server = await startHostileServer();
    server.enrol(agentDir);
    await start();
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.close();
    if (process.env.QUELL_TEST_VERBOSE) process.stdout.write(agent.log());
    execFileSync('umount', ['-l', other]);
    rmSync(work, { recursive: true, force: true });
  });

  const send = (command: Partial<CommandPayload> & Pick<CommandPayload, 'type' | 'entity'>): Promise<Answer> => server.send(command);
  const quarantine = (path: string, extra: Partial<CommandPayload> = {}) => send({ type: 'quarantine_file', entity: { name: path, path }, ...extra });
  const restore = (of: { actionId: string; path: string }) => send({ type: 'restore_file', entity: { name: of.path, path: of.path }, undoOf: of.actionId });

  /** A trivial command (an undo with nothing to undo) must be answered within LIVENESS_MS. */
  async function expectResponsive(): Promise<void> {
    const started = performance.now();
    const answer = await Promise.race([
      send({ type: 'restore_service', entity: { name: 'probe.service' }, undoOf: randomUUID() }),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), LIVENESS_MS)),
    ]);
    expect(answer, `the agent did not answer a probe within ${LIVENESS_MS} ms`).not.toBeNull();
    expect(refusal(answer!)).toMatch(/no service record/);
    expect(performance.now() - started).toBeLessThan(LIVENESS_MS);
  }

  function plant(dir: string, name = 'evil.bin', content = `payload ${randomUUID()}`): { path: string; sha256: string } {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o755 });
    return { path, sha256: sha256(content) };
  }
  const vaultHolds = (actionId: string): boolean => existsSync(join(agentDir, 'vault', actionId));
  const vaultEntries = (): string[] => (existsSync(join(agentDir, 'vault')) ? readdirSync(join(agentDir, 'vault')) : []);

  it('never follows a link in any component of a path: each is refused and nothing moves', async () => {
    const real = join(files, 'links', 'real');
    const target = plant(join(real, 'sub'));
    symlinkSync(real, join(files, 'links', 'to-real'));
    symlinkSync(join(real, 'sub'), join(real, 'to-sub'));
    symlinkSync(target.path, join(real, 'sub', 'to-evil'));
    const attempts = [
      join(files, 'links', 'to-real', 'sub', 'evil.bin'),
      join(real, 'to-sub', 'evil.bin'),
      join(real, 'sub', 'to-evil'),
    ];
    for (const path of attempts) {
      const answer = await quarantine(path, { entity: { name: 'evil.bin', path, sha256: target.sha256 } });
      expect(refusal(answer), path).toMatch(/is a symbolic link; links are never followed/);
    }
    expect(refusal(await quarantine(`${real}/sub/../sub/evil.bin`))).toMatch(/not a canonical path/);
    expect(refusal(await quarantine(`${real}//sub/evil.bin`))).toMatch(/not a canonical path/);
    expect(sha256Of(target.path)).toBe(target.sha256);
    expect(vaultEntries()).toEqual([]);
    await expectResponsive();
  });

  it('restores only into the very folders the file was taken from: a folder replaced by a link or another folder is refused and nothing is written', async () => {
    // Where a link would send the restored file: the sandbox's /etc/cron.d, as an attacker would want.
    const cronD = join(etc, 'cron.d');
    const cronBefore = readdirSync(cronD).sort();
    const mutations: Array<[string, (dir: string) => () => void]> = [
      ['the folder replaced by a link to /etc/cron.d', (dir) => {
        renameSync(join(dir, 'sub'), join(dir, 'sub-moved'));
        symlinkSync('/etc/cron.d', join(dir, 'sub'));
        return () => { rmSync(join(dir, 'sub')); renameSync(join(dir, 'sub-moved'), join(dir, 'sub')); };
      }],
      ['a folder higher up replaced by a link', (dir) => {
        renameSync(dir, `${dir}-moved`);
        symlinkSync(`${dir}-moved`, dir);
        return () => { rmSync(dir); renameSync(`${dir}-moved`, dir); };
      }],
      ['the folder replaced by a new folder of the same name', (dir) => {
        renameSync(join(dir, 'sub'), join(dir, 'sub-moved'));
        mkdirSync(join(dir, 'sub'));
        return () => { rmSync(join(dir, 'sub'), { recursive: true }); renameSync(join(dir, 'sub-moved'), join(dir, 'sub')); };
      }],
      ['the folder made writable by everyone', (dir) => {
        chmodSync(join(dir, 'sub'), 0o777);
        return () => chmodSync(join(dir, 'sub'), 0o755);
      }],
    ];
    for (const [what, mutate] of mutations) {
      const dir = join(files, `restore-${randomUUID()}`);
      mkdirSync(join(dir, 'sub'), { recursive: true, mode: 0o755 });
      chmodSync(join(dir, 'sub'), 0o755);
      const file = plant(join(dir, 'sub'));
      const actionId = randomUUID();
      completed(await quarantine(file.path, { actionId }));
      expect(existsSync(file.path)).toBe(false);

      const undoMutation = mutate(dir);
      expect(refusal(await restore({ actionId, path: file.path })), what).toMatch(/symbolic link|not the one recorded when the action ran/);
      expect(readdirSync(cronD).sort(), what).toEqual(cronBefore);
      expect(vaultHolds(actionId), what).toBe(true);

      // Once the folders are what they were, the same file comes back: the refusal lost nothing.
      undoMutation();
      completed(await restore({ actionId, path: file.path }));
      expect(sha256Of(file.path), what).toBe(file.sha256);
      expect(vaultHolds(actionId), what).toBe(false);
    }
    await expectResponsive();
  });

  it('refuses special files and kernel file systems at once, even with the right hash, and keeps answering', async () => {
    const fifo = join(files, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const sysfs = '/sys/kernel/fscaps';
    const attempts: Array<[string, string | undefined, RegExp]> = [
      [sysfs, sha256(readFileSync(sysfs)), /sysfs file system/],
      ['/proc/1/status', undefined, /proc file system/],
      ['/proc/self/status', undefined, /symbolic link/],
      ['/dev/null', undefined, /devtmpfs file system|not a regular file/],
      [fifo, undefined, /not a regular file/],
    ];
    for (const [path, hash, reason] of attempts) {
      const answer = await quarantine(path, { entity: { name: path, path, ...(hash ? { sha256: hash } : {}) } });
      expect(refusal(answer), path).toMatch(reason);
    }
    expect(existsSync(fifo)).toBe(true);
    await expectResponsive();
  });

  it('refuses guarded targets with their reason; the override lifts the system guards, never the agent\'s own', async () => {
    const passwd = sha256Of(join(etc, 'passwd'));
    const shadowLink = join(files, 'shadow-copy');
    linkSync(join(etc, 'shadow'), shadowLink);
    const identity = join(agentDir, 'identity.json');
    const identityHash = sha256Of(identity);
    const refusals: Array<[string, Promise<Answer>]> = [
      ['/etc/passwd', send({ type: 'quarantine_file', entity: { name: 'passwd', path: '/etc/passwd', sha256: passwd } })],
      ['a hard link to /etc/shadow', quarantine(shadowLink)],
      ['the agent\'s identity', send({ type: 'quarantine_file', entity: { name: 'identity.json', path: identity, sha256: identityHash } })],
      ['the agent\'s unit', send({ type: 'stop_service', entity: { name: 'quell-agent.service' } })],
      ['sshd', send({ type: 'stop_service', entity: { name: 'ssh.service' } })],
      ['journald', send({ type: 'stop_service', entity: { name: 'systemd-journald.service' } })],
      ['root', send({ type: 'contain_user', entity: { name: 'root' } })],
      ['nftables', send({ type: 'disable_driver', entity: { name: 'nf_tables' } })],
    ];
    for (const [what, answer] of refusals) expect(refusal(await answer), what).toMatch(/guarded|the Quell agent's own/);
    expect(sha256Of(join(etc, 'passwd'))).toBe(passwd);
    expect(existsSync(shadowLink)).toBe(true);
    expect(sha256Of(identity)).toBe(identityHash);

    const stillOwn = await send({ type: 'quarantine_file', entity: { name: 'identity.json', path: identity }, parameters: { overrideGuard: true } });
    expect(refusal(stillOwn)).toMatch(/never done, not even with parameters.overrideGuard/);
    expect(sha256Of(identity)).toBe(identityHash);

    // With the override a system file can be taken (the sandbox's copy) and comes back exactly.
    const actionId = randomUUID();
    completed(await send({ type: 'quarantine_file', actionId, entity: { name: 'passwd', path: '/etc/passwd', sha256: passwd }, parameters: { overrideGuard: true } }));
    expect(existsSync(join(etc, 'passwd'))).toBe(false);
    completed(await restore({ actionId, path: '/etc/passwd' }));
    expect(sha256Of(join(etc, 'passwd'))).toBe(passwd);
    await expectResponsive();
  });

  it('refuses ids that are not UUIDs before anything is built from them', async () => {
    const victim = join(work, 'victim');
    plant(victim, 'keep.txt', 'keep');
    const rejectionsBefore = server.frames.filter((f) => f.t === 'rejected').length;
    // Ids that are not UUIDs cannot be named in a refusal: these are answered by refusals without one.
    void send({ type: 'collect_investigation_package', entity: { name: 'device' }, actionId: '../../victim' });
    void send({ type: 'quarantine_file', entity: { name: 'x', path: join(files, 'nothing') }, actionId: `../victim/${randomUUID()}` });
    const undo = send({ type: 'restore_file', entity: { name: 'x', path: join(files, 'nothing') }, undoOf: '../../victim' });
    await waitFor('three refusals', async () => (server.frames.filter((f) => f.t === 'rejected').length >= rejectionsBefore + 3 ? true : undefined));
    const reasons = server.frames.filter((f) => f.t === 'rejected').slice(rejectionsBefore).map((f) => (f as { reason: string }).reason);
    expect(reasons.filter((r) => /\/actionId must be a UUID/.test(r))).toHaveLength(2);
    expect(refusal(await undo)).toMatch(/\/undoOf must be null or a UUID/);
    expect(readFileSync(join(victim, 'keep.txt'), 'utf8')).toBe('keep');
    await expectResponsive();
  });

  it('bounds every input: oversized requests are refused, long ones end, and the agent keeps answering meanwhile', async () => {
    // 100 paths of 1,200 characters: as much as one command may carry (128 KiB).
    const long = (i: number) => `/${'a'.repeat(250)}/${'b'.repeat(250)}/${String(i).padStart(200, 'c')}`.repeat(3).slice(0, 1200);
    const paths = Array.from({ length: 100 }, (_, i) => long(i));
    const evidence = send({ type: 'collect_evidence', entity: { name: 'device' }, parameters: { paths } });
    await expectResponsive();
    const output = completed(await evidence);
    expect(output.length).toBeLessThanOrEqual(60_000);
    expect(JSON.parse(output)).toHaveProperty('leftOut');

    const tooMany = Array.from({ length: 101 }, (_, i) => `/tmp/file-${i}`);
    expect(refusal(await send({ type: 'collect_evidence', entity: { name: 'device' }, parameters: { paths: tooMany } }))).toMatch(/at most 100 paths/);
    expect(refusal(await send({ type: 'quarantine_file', entity: { name: 'x'.repeat(5000) } }))).toMatch(/\/entity\/name must be 1 to 1024 characters/);
    expect(refusal(await send({ type: 'stop_service', entity: { name: 'a.service' }, parameters: { surprise: 'x' } as CommandPayload['parameters'] }))).toMatch(/takes no parameter "surprise"/);
    expect(refusal(await send({ type: 'run_antivirus_scan', entity: { name: 'device' }, parameters: { scan: 'deep' as 'full' } }))).toMatch(/parameters.scan must be quick or full/);

    // A burst of long commands waits its turn; an urgent one still goes through.
    const burst = Array.from({ length: 30 }, () => send({ type: 'collect_evidence', entity: { name: 'device' }, parameters: { paths: paths.slice(0, 10) } }));
    await expectResponsive();
    for (const answer of await Promise.all(burst)) completed(answer);
  }, 120_000);

  it('puts a contained user back when someone unlocks the account while the agent runs, and reports it signed', async () => {
    // The account exists only in the sandbox's copy of /etc, made inside the agent's mount namespace.
    const inSandbox = (command: string, args: string[], input?: string) => execFileSync('nsenter', ['-t', String(agent.child.pid), '-m', command, ...args], { input });
    const name = `quelldrift${Math.random().toString(36).slice(2, 7)}`;
    // A uid far from this machine's own users: containment ends every process that runs as it.
    inSandbox('useradd', ['-M', '-u', String(200_000 + Math.floor(Math.random() * 100_000)), '-s', '/bin/sh', name]);
    inSandbox('chpasswd', [], `${name}:correct horse battery\n`);
    const actionId = randomUUID();
    completed(await send({ type: 'contain_user', actionId, entity: { name } }));
    const shadow = () => readFileSync(join(etc, 'shadow'), 'utf8').split('\n').find((line) => line.startsWith(`${name}:`))!.split(':');
    expect(shadow()[1]).toMatch(/^!/);

    const before = server.frames.filter((f) => f.t === 'drift').length;
    // One command, one write of /etc/shadow: a check the kernel's word starts sees both changes or neither.
    inSandbox('usermod', ['-U', '-e', '', name]);
    const frame = await waitFor('the drift report', async () => server.frames.filter((f) => f.t === 'drift')[before]);
    const drift = JSON.parse(Buffer.from((frame as { jws: string }).jws.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(drift).toMatchObject({ effect: 'user_containment', actionIds: [actionId], repaired: true });
    expect(drift.found).toBe(`${name}: its password was unlocked, its expiry was lifted`);
    expect(shadow()[1]).toMatch(/^!/);
    expect(shadow()[7]).toBe('1');
    completed(await send({ type: 'release_user', entity: { name }, undoOf: actionId }));
    expect(shadow()[1]).not.toMatch(/^!/);
  });

  describe('killed in the middle of a move across file systems', () => {
    /** A file large enough that copying it takes a moment: it lives on the tmpfs, the vault on the disk. */
    const bigFile = (name: string): { path: string; sha256: string } => {
      const path = join(other, name);
      const chunk = Buffer.alloc(16 * 1024 * 1024);
      for (let i = 0; i < chunk.length; i += 4096) chunk.writeUInt32LE(i ^ 0x5a5a5a5a, i);
      const hash = createHash('sha256');
      writeFileSync(path, '');
      for (let i = 0; i < 24; i++) {
        chunk.writeUInt32LE(i, 0);
        writeFileSync(path, chunk, { flag: 'a' });
        hash.update(chunk);
      }
      return { path, sha256: hash.digest('hex') };
    };

    async function killWhen(what: string, appeared: () => boolean): Promise<void> {
      await waitFor(what, async () => (appeared() ? true : undefined), 30_000);
      await agent.stop('SIGKILL');
      await start();
    }

    it('during quarantine: the original stays whole where it was, no partial copy is left, and the action is reported interrupted', async () => {
      const file = bigFile('big-quarantine.bin');
      const actionId = randomUUID();
      void server.send({ type: 'quarantine_file', actionId, entity: { name: file.path, path: file.path, sha256: file.sha256 } });
      await killWhen('the copy into the vault to begin', () => vaultEntries().some((n) => n.includes(actionId)));
      // The server sends the command again after a restart, as it does for every action still in progress.
      expect(refusal(await server.send({ type: 'quarantine_file', actionId, entity: { name: file.path, path: file.path, sha256: file.sha256 } }))).toMatch(/stopped while carrying out this action/);
      expect(sha256Of(file.path)).toBe(file.sha256);
      expect(vaultEntries().filter((n) => n.startsWith('.partial-'))).toEqual([]);
      // A new quarantine of the same file works.
      const again = randomUUID();
      completed(await quarantine(file.path, { actionId: again }));
      expect(existsSync(file.path)).toBe(false);
      completed(await restore({ actionId: again, path: file.path }));
      expect(sha256Of(file.path)).toBe(file.sha256);
    }, 120_000);

    it('during restore: nothing partial appears at the original path, the leftover is removed, and a new restore brings the file back whole', async () => {
      const file = bigFile('big-restore.bin');
      const quarantined = randomUUID();
      completed(await quarantine(file.path, { actionId: quarantined }));
      const restoreId = randomUUID();
      void server.send({ type: 'restore_file', actionId: restoreId, entity: { name: file.path, path: file.path }, undoOf: quarantined });
      await killWhen('the copy back to begin', () => readdirSync(other).some((n) => n.includes(restoreId)));
      expect(existsSync(file.path) ? sha256Of(file.path) : 'absent').toMatch(new RegExp(`^(absent|${file.sha256})$`));
      await waitFor('the leftover to be removed', async () => (readdirSync(other).some((n) => n.includes(restoreId)) ? undefined : true));
      expect(refusal(await server.send({ type: 'restore_file', actionId: restoreId, entity: { name: file.path, path: file.path }, undoOf: quarantined }))).toMatch(/stopped while carrying out this action/);
      if (!existsSync(file.path)) completed(await restore({ actionId: quarantined, path: file.path }));
      expect(sha256Of(file.path)).toBe(file.sha256);
    }, 120_000);
  });
});

