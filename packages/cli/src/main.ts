import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_AGENT_DIR, PERMISSIONS, type Permission, ROLES, type Role } from '@quell/contracts';
import type { Actor, Services } from '@quell/server';

/**
 * The server and the agent are loaded only by the commands that need them:
 * `quell agent run` on an endpoint never loads the server's dependencies.
 */
const server = () => import('@quell/server');
const agentModule = () => import('@quell/agent');

/** A user error: printed as one line, exit code 2. */
class UsageError extends Error {}

const program = new Command('quell')
  .description('Quell: a self-hosted action center for endpoint remediation.\nConfiguration comes from QUELL_* environment variables or the JSON file named by QUELL_CONFIG.')
  .showHelpAfterError();

/** Opens the configured database, runs a command against the services and closes it again. */
async function withServices<T>(run: (services: Services) => Promise<T>): Promise<T> {
  const { createServices, loadConfig, migrate, openStore } = await server();
  const config = loadConfig();
  const store = openStore(config.store);
  try {
    await migrate(store);
    return await run(createServices({ store, settingsDefaults: { pendingExpiryHours: config.pendingExpiryHours } }));
  } finally {
    await store.close();
  }
}

/** Commands run on the server machine act as the local operating-system user, which the audit log records. */
const cliActor = (): Actor => ({ kind: 'system', userId: null, name: `cli:${userInfo().username}`, role: 'global_admin', scopes: null, groupIds: null, sourceIp: 'local' });

function parseRole(value: string): Role {
  if (!(ROLES as readonly string[]).includes(value)) throw new InvalidArgumentError(`choose one of ${ROLES.join(', ')}`);
  return value as Role;
}

function parseScopes(value: string): Permission[] {
  const scopes = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = scopes.filter((s) => !(PERMISSIONS as readonly string[]).includes(s));
  if (unknown.length > 0 || scopes.length === 0) throw new InvalidArgumentError(`unknown scope ${unknown.join(', ')}; known: ${PERMISSIONS.join(', ')}`);
  return scopes as Permission[];
}

function parsePositive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new InvalidArgumentError('a whole number from 1 to 100000');
  return n;
}

function parseDays(value: string): number {
  const days = Number(value);
  if (!Number.isInteger(days) || days < 1 || days > 365) throw new InvalidArgumentError('a whole number of days from 1 to 365');
  return days;
}

program.command('server')
  .description('Start the Quell server (HTTP API, docs at /api/docs, jobs). Migrates the database first.')
  .action(async () => {
    const { loadConfig, startServer } = await server();
    const config = loadConfig();
    const running = await startServer(config, { handleSignals: true });
    const banner = [
      `\nQuell is running at ${running.url}  (API docs: ${running.url}/api/docs, database: ${config.store.dialect === 'sqlite' ? config.store.file : 'PostgreSQL'})`,
      `Agent command-signing key: ${running.signingKeyId}`,
      running.tlsFingerprint
        ? `TLS certificate SHA-256 fingerprint: ${running.tlsFingerprint}\n  enrol agents with: quell agent enrol --server ${running.url} --fingerprint ${running.tlsFingerprint} --token <enrolment token>`
        : 'Plain HTTP: set QUELL_TLS=self-signed (or QUELL_TLS_CERT and QUELL_TLS_KEY) before enrolling agents over a network.',
    ];
    if (running.generatedAdminPassword) banner.push(`First administrator created. User: admin  One-time password: ${running.generatedAdminPassword}`, 'It is shown only now; keep it safe.');
    process.stdout.write(banner.join('\n') + '\n\n');
  });

const user = program.command('user').description('Manage users');
user.command('add')
  .description('Create a user')
  .requiredOption('--username <name>', 'sign-in name')
  .addOption(new Option('--role <role>', `one of ${ROLES.join(', ')}`).argParser(parseRole).makeOptionMandatory())
  .option('--display-name <text>', 'name shown in the console')
  .option('--password <password>', 'at least 12 characters (default: read QUELL_NEW_PASSWORD)')
  .action(async (opts: { username: string; role: Role; displayName?: string; password?: string }) => {
    const password = opts.password ?? process.env.QUELL_NEW_PASSWORD;
    if (!password) throw new InvalidArgumentError('give --password or set QUELL_NEW_PASSWORD');
    const created = await withServices((s) => s.users.create(cliActor(), { username: opts.username, role: opts.role, password, displayName: opts.displayName }));
    process.stdout.write(`Created ${created.username} (${created.role}), id ${created.id}\n`);
  });
user.command('list')
  .description('List users')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const users = await withServices((s) => s.users.list(cliActor()));
    if (opts.json) return void process.stdout.write(JSON.stringify(users, null, 2) + '\n');
    for (const u of users) process.stdout.write(`${u.username.padEnd(24)} ${u.role.padEnd(18)} ${u.disabled ? 'disabled' : 'active'}\n`);
  });
user.command('disable')
  .description('Disable a user and end their sessions')
  .argument('<username>')
  .action(async (username: string) => {
    await withServices(async (s) => {
      const found = await s.users.findByUsername(username);
      if (!found) throw new UsageError(`No user named ${username}`);
      await s.users.update(cliActor(), found.id, { disabled: true });
    });
    process.stdout.write(`Disabled ${username}\n`);
  });

const token = program.command('token').description('Manage API tokens and agent enrolment tokens');
token.command('create')
  .description('Create an API token acting as a user, or with --enrolment a token that enrols agents; prints the secret once')
  .option('--enrolment', 'an agent enrolment token (limited uses) instead of an API token')
  .option('--user <username>', 'API token: the user it acts as')
  .requiredOption('--name <name>', 'what the token is for')
  .addOption(new Option('--scopes <list>', `API token: comma-separated, from: ${PERMISSIONS.join(', ')}`).argParser(parseScopes))
  .addOption(new Option('--uses <n>', 'enrolment token: how many agents may enrol with it').argParser(parsePositive).default(1))
  .addOption(new Option('--days <n>', 'days until it expires').argParser(parseDays).default(30))
  .action(async (opts: { enrolment?: boolean; user?: string; name: string; scopes?: Permission[]; uses: number; days: number }) => {
    if (opts.enrolment) {
      const created = await withServices((s) => s.agents.createEnrolmentToken(cliActor(), { name: opts.name, uses: opts.uses, expiresInDays: Math.min(opts.days, 90) }));
      process.stdout.write(`Enrolment token ${created.token.id} (${created.token.usesLeft} uses, expires ${created.token.expiresAt}). Secret, shown once:\n${created.secret}\n`);
      return;
    }
    if (!opts.user || !opts.scopes) throw new InvalidArgumentError('an API token needs --user and --scopes (or pass --enrolment)');
    const { user: username, scopes } = opts;
    const created = await withServices(async (s) => {
      const owner = await s.users.findByUsername(username);
      if (!owner || owner.disabled) throw new UsageError(`No active user named ${username}`);
      return s.tokens.create(cliActor(), { name: opts.name, scopes, expiresInDays: opts.days }, { userId: owner.id, role: owner.role, scopes: null });
    });
    process.stdout.write(`Token ${created.token.id} (expires ${created.token.expiresAt}). Secret, shown once:\n${created.secret}\n`);
  });
token.command('revoke')
  .description('Revoke an API token')
  .argument('<id>')
  .action(async (id: string) => {
    await withServices((s) => s.tokens.revoke(cliActor(), id));
    process.stdout.write(`Revoked ${id}\n`);
  });

const device = program.command('device').description('Devices');
device.command('offboard')
  .description('Offboard the agent of a device: it releases what Quell put in force, leaves its quarantine vault with instructions, removes its identity and reports; then it is revoked')
  .argument('<deviceId>')
  .option('--keep-effects', 'leave isolation, code restriction and contained users in force on the device')
  .action(async (deviceId: string, opts: { keepEffects?: boolean }) => {
    await withServices((s) => s.agents.offboard(cliActor(), deviceId, { releaseEffects: !opts.keepEffects }));
    process.stdout.write(`Offboarding ${deviceId}: its agent is told when it next connects, and is revoked once it reports.\n`);
  });

const agent = program.command('agent').description('The endpoint agent (run as root on the endpoint)');
agent.command('enrol')
  .description('Enrol this machine with a Quell server and store its identity root-only')
  .requiredOption('--server <url>', 'the Quell server URL, e.g. https://quell.example:8443; for replicas without a load balancer, their URLs separated by commas (the agent dials them in turn)')
  .requiredOption('--token <token>', 'an enrolment token from quell token create --enrolment')
  .option('--fingerprint <sha256>', 'https servers: the TLS certificate fingerprint quell server printed; the agent trusts that certificate alone')
  .option('--dir <path>', 'where the agent keeps its identity, journal and vault', DEFAULT_AGENT_DIR)
  .action(async (opts: { server: string; token: string; dir: string; fingerprint?: string }) => {
    const { enrolAgent } = await agentModule();
    const enrolled = await enrolAgent({ serverUrl: opts.server, token: opts.token, dir: opts.dir, fingerprint: opts.fingerprint });
    process.stdout.write(`Enrolled as device ${enrolled.deviceId}. Pinned server key ${enrolled.serverKeyId}: compare it with the one quell server printed.\nStart the agent with: quell agent run --dir ${opts.dir}\n`);
  });
agent.command('servers')
  .description('Give an enrolled agent the server\'s addresses anew (replicas without a load balancer); it reads them when it next starts')
  .requiredOption('--server <urls>', 'the replicas\' URLs separated by commas, of the protocol the agent enrolled with')
  .option('--dir <path>', 'the directory given at enrolment', DEFAULT_AGENT_DIR)
  .action(async (opts: { server: string; dir: string }) => {
    const { setServerUrls } = await agentModule();
    let urls: string[];
    try {
      urls = setServerUrls(opts.dir, opts.server);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    process.stdout.write(`The agent in ${opts.dir} will dial ${urls.join(', ')} from its next start.\n`);
  });
agent.command('run')
  .description('Run the agent: connect to the server and carry out signed commands')
  .option('--dir <path>', 'the directory given at enrolment', DEFAULT_AGENT_DIR)
  .option('--watch <folders>', 'comma-separated folders the antivirus watches for new files (empty: none)', '/tmp,/var/tmp,/dev/shm')
  .option('--exec-guard <paths>', 'comma-separated paths whose mounts are guarded: running a blocked file there is refused (empty: none)', '/,/usr,/usr/local,/opt,/home,/root,/tmp,/var,/var/tmp,/dev/shm,/srv')
  .option('--drift-check-seconds <seconds>', 'how often what Quell put in force is checked when no event says it changed', '3')
  .action(async (opts: { dir: string; watch: string; execGuard: string; driftCheckSeconds: string }) => {
    const { startAgent, driftCheckMs, exitIfOffboarded, OFFBOARDED_EXIT_CODE } = await agentModule();
    exitIfOffboarded(opts.dir);
    let driftCheck: number;
    try {
      driftCheck = driftCheckMs(opts.driftCheckSeconds);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const running = await startAgent({
      dir: opts.dir, watch: opts.watch.split(',').map((f) => f.trim()).filter(Boolean), execGuard: opts.execGuard.split(',').map((f) => f.trim()).filter(Boolean),
      driftCheckMs: driftCheck, onOffboarded: () => process.exit(OFFBOARDED_EXIT_CODE),
    });
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void running.stop().then(() => process.exit(0)));
  });

/** Where `quell simulate` keeps its agents' identities by default: one folder per server, under the user's state directory. */
function defaultSimulationDir(serverUrl: string): string {
  const stateHome = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(stateHome, 'quell', 'simulate', new URL(serverUrl).host.replace(/[^\w.-]/g, '_'));
}

program.command('simulate')
  .description('Run N simulated agents (real keys, enrolment, WebSockets and signatures; a fake platform that answers every command as a real agent would) until interrupted. Their identities are kept: run it again and the same devices come back')
  .requiredOption('--server <url>', 'the Quell server URL')
  .option('--token <token>', 'an enrolment token with a use for each agent not enrolled yet (quell token create --enrolment --uses N); not needed once all are')
  .addOption(new Option('--agents <n>', 'how many agents').argParser(parsePositive).default(10))
  .option('--state-dir <path>', 'where the agents\' keys and device ids are kept (default: ~/.local/state/quell/simulate/<server>)')
  .action(async (opts: { server: string; token?: string; agents: number; stateDir?: string }) => {
    const { SimulationError, startFleet } = await agentModule();
    let url: URL;
    try {
      url = new URL(opts.server);
    } catch {
      throw new UsageError(`--server must be a URL such as http://127.0.0.1:8080, not ${opts.server}`);
    }
    const stateDir = opts.stateDir ?? defaultSimulationDir(url.href);
    let progress = false;
    const fleet = await startFleet({
      serverUrl: opts.server, token: opts.token, agents: opts.agents, stateDir,
      onProgress: (phase, done, total) => {
        progress = true;
        process.stderr.write(`\r${phase} ${done}/${total}`);
      },
    }).catch((error: unknown) => {
      if (progress) process.stderr.write('\n');
      if (error instanceof SimulationError) throw new UsageError(error.message);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ECONNRESET') throw new UsageError(`cannot reach the server at ${opts.server} (${code})`);
      throw error;
    });
    process.stderr.write('\n');
    const kept = opts.agents - fleet.enrolled;
    process.stdout.write(`${fleet.connectedCount()} simulated agents connected to ${opts.server} (${fleet.enrolled} enrolled now, ${kept} from ${stateDir}); Ctrl-C to stop\n`);
    const report = setInterval(() => {
      const executed = fleet.agents.reduce((n, a) => n + a.executed.length, 0);
      process.stderr.write(`\rconnected ${fleet.connectedCount()}/${opts.agents}, commands carried out ${executed}`);
    }, 2000);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        clearInterval(report);
        void fleet.close().then(() => process.exit(0));
      });
    }
  });

const audit = program.command('audit').description('The audit log');
audit.command('verify')
  .description('Check the hash chain: exits 1 if any entry was edited, removed or reordered')
  .action(async () => {
    const result = await withServices((s) => s.audit.verify((n) => process.stderr.write(`\rchecked ${n} entries`)));
    process.stderr.write('\n');
    if (result.ok) {
      process.stdout.write(`Audit log intact: ${result.checked} entries verified\n`);
    } else {
      process.stdout.write(`Audit log BROKEN at entry ${result.firstBadSeq}: ${result.reason} (${result.checked} entries before it verified)\n`);
      process.exitCode = 1;
    }
  });

try {
  await program.parseAsync();
} catch (error) {
  const { ConfigError, QuellError } = await server();
  if (error instanceof ConfigError || error instanceof QuellError || error instanceof InvalidArgumentError || error instanceof UsageError) {
    process.stderr.write(`quell: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
