/**
 * `quell-agent`: the agent alone, bundled into one JavaScript file
 * (dist/quell-agent.mjs, built by `npm run build:agent`, run at install) so
 * that an endpoint runs plain JavaScript with nothing but the agent loaded.
 * `quell agent …` offers the same commands from the full command line.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_AGENT_DIR } from '@quell/contracts';
import { DEFAULT_DRIFT_CHECK_SECONDS, driftCheckMs, startAgent } from './agent.ts';
import { DEFAULT_WATCHED_FOLDERS } from './antivirus-watch.ts';
import { DEFAULT_GUARDED_PATHS } from './exec-guard.linux.ts';
import { enrolAgent, setServerUrls } from './enrol.ts';
import { OFFBOARDED_EXIT_CODE, exitIfOffboarded } from './offboard.linux.ts';

const USAGE = `Usage:
  quell-agent enrol --server URL --token TOKEN [--fingerprint SHA256] [--dir ${DEFAULT_AGENT_DIR}]
    (an https server needs --fingerprint: the TLS certificate fingerprint quell server printed)
    (--server: for replicas without a load balancer, their URLs separated by commas)
  quell-agent servers --server URL[,URL…] [--dir ${DEFAULT_AGENT_DIR}]
    (gives an enrolled agent the server's addresses anew; it reads them when it next starts)
  quell-agent run [--dir ${DEFAULT_AGENT_DIR}] [--watch ${DEFAULT_WATCHED_FOLDERS.join(',')}] [--exec-guard ${DEFAULT_GUARDED_PATHS.join(',')}] [--drift-check-seconds ${DEFAULT_DRIFT_CHECK_SECONDS}]
    (--watch: folders the antivirus watches for new files; empty for none)
    (--exec-guard: paths whose mounts are guarded: running a blocked file there is refused; empty for none)
    (--drift-check-seconds: how often what Quell put in force is checked when no event says it changed)`;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { server: { type: 'string' }, token: { type: 'string' }, fingerprint: { type: 'string' }, watch: { type: 'string', default: DEFAULT_WATCHED_FOLDERS.join(',') }, 'exec-guard': { type: 'string', default: DEFAULT_GUARDED_PATHS.join(',') }, 'drift-check-seconds': { type: 'string', default: String(DEFAULT_DRIFT_CHECK_SECONDS) }, dir: { type: 'string', default: DEFAULT_AGENT_DIR }, help: { type: 'boolean' } },
});
const dir = values.dir ?? DEFAULT_AGENT_DIR;

if (values.help || positionals.length !== 1) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(values.help ? 0 : 2);
} else if (positionals[0] === 'enrol') {
  if (!values.server || !values.token) {
    process.stderr.write(`quell-agent enrol needs --server and --token\n${USAGE}\n`);
    process.exit(2);
  }
  const enrolled = await enrolAgent({ serverUrl: values.server, token: values.token, dir, fingerprint: values.fingerprint });
  process.stdout.write(`Enrolled as device ${enrolled.deviceId}. Pinned server key ${enrolled.serverKeyId}.\n`);
} else if (positionals[0] === 'servers') {
  if (!values.server) {
    process.stderr.write(`quell-agent servers needs --server\n${USAGE}\n`);
    process.exit(2);
  }
  try {
    process.stdout.write(`The agent in ${dir} will dial ${setServerUrls(dir, values.server).join(', ')} from its next start.\n`);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
} else if (positionals[0] === 'run') {
  exitIfOffboarded(dir);
  let driftCheck: number;
  try {
    driftCheck = driftCheckMs(values['drift-check-seconds'] ?? String(DEFAULT_DRIFT_CHECK_SECONDS));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  const running = await startAgent({
    dir, watch: (values.watch ?? '').split(',').map((f) => f.trim()).filter(Boolean), execGuard: (values['exec-guard'] ?? '').split(',').map((f) => f.trim()).filter(Boolean), driftCheckMs: driftCheck, onOffboarded: () => process.exit(OFFBOARDED_EXIT_CODE),
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void running.stop().then(() => process.exit(0)));
} else {
  process.stderr.write(`unknown command ${positionals[0]}\n${USAGE}\n`);
  process.exit(2);
}
