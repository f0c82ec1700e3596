import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { INVESTIGATION_PACKAGE_MAX_BYTES } from '@quell/contracts';
import { mustRun } from '../runner.ts';
import { Folder } from '../safe-fs.linux.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/** What goes into the package: a file name and how to fill it. A source that is missing on this system says so in its file. */
const COMMANDS: Array<[file: string, command: string, args: string[]]> = [
  ['processes.txt', 'ps', ['-eo', 'pid,ppid,user,lstart,stat,args', '--sort=pid']],
  ['sessions.txt', 'who', ['-a']],
  ['logins.txt', 'last', ['-n', '200', '-F']],
  ['services.txt', 'systemctl', ['list-units', '--type=service', '--all', '--no-pager']],
  ['timers.txt', 'systemctl', ['list-timers', '--all', '--no-pager']],
  ['packages.txt', 'dpkg-query', ['-W', '-f', '${Package}\t${Version}\t${Status}\n']],
];
const FILES: Array<[file: string, paths: string[]]> = [
  ['network-tcp.txt', ['/proc/net/tcp', '/proc/net/tcp6']],
  ['network-udp.txt', ['/proc/net/udp', '/proc/net/udp6']],
  ['users.txt', ['/etc/passwd', '/etc/group']],
  ['kernel-modules.txt', ['/proc/modules']],
];
const AUTH_LOGS = ['/var/log/auth.log', '/var/log/secure'];
const CRON_DIRS = ['/etc/cron.d', '/etc/cron.hourly', '/etc/cron.daily', '/etc/cron.weekly', '/etc/cron.monthly', '/var/spool/cron/crontabs'];
const AUTH_LOG_LINES = 5000;
/** What one file may add to the package; a log's newest part is kept. */
const FILE_BYTES = 4 * 1024 * 1024;
const CRON_FILES_MAX = 1000;

/** A kernel interface (/proc): the agent names these itself; they report no size, so they are read up to FILE_BYTES. */
async function readKernelFile(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(FILE_BYTES);
    let filled = 0;
    for (let read = -1; read !== 0 && filled < buffer.length; filled += read) read = (await handle.read(buffer, filled, buffer.length - filled, null)).bytesRead;
    return buffer.subarray(0, filled).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** A file's text (its last FILE_BYTES), read without following links; or a note saying why it is missing. */
async function readOrNote(path: string): Promise<string> {
  if (path.startsWith('/proc/')) return readKernelFile(path).catch((error: unknown) => `(${path} not readable: ${(error as NodeJS.ErrnoException).code ?? 'error'})\n`);
  let where: { folder: Folder; name: string } | null = null;
  try {
    where = Folder.ofFile(path);
    const file = where.folder.openFile(where.name);
    try {
      return (await file.tail(FILE_BYTES)).toString('utf8');
    } finally {
      file.close();
    }
  } catch (error) {
    return `(${path} not readable: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message})\n`;
  } finally {
    where?.folder.close();
  }
}

async function cronListing(): Promise<string> {
  const parts = [`== /etc/crontab\n${await readOrNote('/etc/crontab')}`];
  const files = CRON_DIRS.filter((dir) => existsSync(dir)).flatMap((dir) => readdirSync(dir).sort().map((name) => join(dir, name)));
  for (const path of files.slice(0, CRON_FILES_MAX)) parts.push(`== ${path}\n${await readOrNote(path)}`);
  return parts.join('\n');
}

async function commandOutput(ctx: ExecutionContext, command: string, args: string[]): Promise<string> {
  try {
    const result = await ctx.runner.run(command, args);
    return result.code === 0 ? result.stdout : `(${command} exited ${result.code}: ${result.stderr.trim()})\n${result.stdout}`;
  } catch (error) {
    return `(${command} is not available here: ${(error as Error).message})\n`;
  }
}

/**
 * Collects what an investigator asks for first — processes, network
 * connections, users and sessions, cron and timers, services, kernel
 * modules, the recent authentication log, installed packages — into a
 * tar.gz and uploads it to the server, signed by this agent. Nothing on the
 * device is changed; the working copy is removed afterwards.
 */
export const collectInvestigationPackage: Executor = async (ctx) => {
  const work = join(ctx.agentDir, 'packages', ctx.command.actionId);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'package'), { recursive: true, mode: 0o700 });
  const out = (name: string, text: string) => writeFileSync(join(work, 'package', name), text, { mode: 0o600 });
  try {
    for (const [file, command, args] of COMMANDS) out(file, await commandOutput(ctx, command, args));
    for (const [file, paths] of FILES) out(file, (await Promise.all(paths.map(async (p) => `== ${p}\n${await readOrNote(p)}`))).join('\n'));
    out('cron.txt', await cronListing());
    const authLog = AUTH_LOGS.find((p) => existsSync(p));
    out('auth-log.txt', authLog ? (await readOrNote(authLog)).split('\n').slice(-AUTH_LOG_LINES).join('\n') : '(no authentication log on this system)\n');
    out('collected.txt', `device ${ctx.command.deviceId}\naction ${ctx.command.actionId}\ncollected ${new Date().toISOString()}\n`);

    const archive = join(work, 'package.tar.gz');
    await mustRun(ctx.runner, 'tar', ['-czf', archive, '-C', join(work, 'package'), '.']);
    const bytes = readFileSync(archive);
    if (bytes.length > INVESTIGATION_PACKAGE_MAX_BYTES) throw new ExecutionError(`the package is ${bytes.length} bytes, over the server's limit`);
    await ctx.upload(bytes);
    return { output: `Investigation package of ${bytes.length} bytes uploaded (${readdirSync(join(work, 'package')).length} files)` };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
};
