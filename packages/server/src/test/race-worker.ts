/**
 * A separate process for race tests: opens the database named in
 * QUELL_TEST_LOCATION, waits for the shared start time, then either decides
 * the given actions or runs the job runner once, and prints what happened.
 */
import { hostname } from 'node:os';
import { type Actor, systemActor } from '../actor.ts';
import { openStore } from '../db/store.ts';
import { QuellError } from '../errors.ts';
import { createJobRunner } from '../modules/jobs/jobs.ts';
import { createServices } from '../services.ts';

const [mode, startAt, ...ids] = process.argv.slice(2);
const store = openStore(JSON.parse(process.env.QUELL_TEST_LOCATION!));
const services = createServices({ store });
const actor: Actor = { ...systemActor(`worker-${process.pid}`), kind: 'user' };

await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())));

const outcome: Record<string, string> = {};
if (mode === 'approve' || mode === 'reject') {
  for (const id of ids) {
    try {
      await services.actions[mode](actor, { ids: [id], comment: `${mode} by ${process.pid}` });
      outcome[id] = 'won';
    } catch (error) {
      if (!(error instanceof QuellError)) throw error;
      outcome[id] = error.code;
    }
  }
} else if (mode === 'jobs') {
  const runner = createJobRunner({
    store, clock: services.clock, owner: `${hostname()}:${process.pid}`, pollMs: 1000,
    jobs: [{ name: 'expire_pending_actions', intervalMs: 60_000, run: () => services.actions.expireDue(systemActor()) }],
  });
  outcome.ran = (await runner.tick()).join(',');
}
process.stdout.write(JSON.stringify(outcome));
await store.close();
