import { hostname } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { systemActor } from './actor.ts';
import { buildApp } from './app.ts';
import type { Config } from './config.ts';
import { migrate } from './db/migrate.ts';
import { openStore } from './db/store.ts';
import { createJobRunner } from './modules/jobs/jobs.ts';
import { createMetrics } from './plugins/metrics.ts';
import { actionGaugeSources, createServices } from './services.ts';
import { createAgentGateway } from './modules/agents/agents.gateway.ts';
import { createCommandSigner, loadOrCreateSigningKey } from './command-signer.ts';
import { createDispatchBus } from './modules/agents/dispatch-bus.ts';
import { loadOrCreateSelfSignedTls, readTlsFiles } from './tls.ts';

/** How often the server looks for investigation steps to run. */
const INVESTIGATION_POLL_MS = 250;

export interface RunningServer {
  url: string;
  /** The thumbprint of the command-signing key, for agent owners to compare. */
  signingKeyId: string;
  /** With HTTPS: the SHA-256 fingerprint of the TLS certificate, which agents pin at enrolment. */
  tlsFingerprint: string | null;
  /** The generated first password of `admin`, when this start created it. */
  generatedAdminPassword: string | null;
  close(): Promise<void>;
}

/**
 * Starts Quell: migrates, creates the first administrator if there is no
 * user, listens, runs the durable jobs, and on SIGTERM/SIGINT stops taking
 * work, finishes in-flight requests and closes the database.
 */
export async function startServer(config: Config, options: { handleSignals?: boolean } = {}): Promise<RunningServer> {
  const logger = pino({ level: config.logLevel, base: { service: 'quell', pid: process.pid } });
  const store = openStore(config.store);
  await migrate(store);
  const metrics = createMetrics();
  const signer = createCommandSigner(loadOrCreateSigningKey(config.dataDir));
  const bus = await createDispatchBus(config.store, (error) => logger.error({ err: error }, 'dispatch bus error'));
  const services = createServices({
    store,
    signer,
    packagesDir: join(config.dataDir, 'packages'),
    settingsDefaults: { pendingExpiryHours: config.pendingExpiryHours },
    onDecision: (type, waited) => metrics.observeDecision(type, waited),
    dispatch: (deviceIds) => bus.publish(deviceIds),
    publishState: () => bus.publishState(),
    onDevicesMoved: (deviceIds) => deviceIds.forEach((id) => gateway.reconnect(id, 'moved to another device group')),
    onError: (error) => logger.error({ err: error }, 'recording agents\' state reports failed'),
  });
  metrics.bind(actionGaugeSources(services));
  const gateway = createAgentGateway({ agents: services.agents, log: logger });
  bus.subscribe((deviceIds) => gateway.dispatch(deviceIds));
  bus.onState(() => gateway.publishState());
  const { generatedPassword } = await services.users.bootstrapAdmin(config.adminPassword);

  let ready = false;
  const tls = config.tls === null ? null : config.tls.mode === 'files' ? readTlsFiles(config.tls.certFile, config.tls.keyFile) : loadOrCreateSelfSignedTls(config.dataDir, config.host);
  const app = await buildApp({
    services, metrics, publicUrl: config.publicUrl, logger, isReady: () => ready, gateway, rateLimit: config.rateLimit, metricsPublic: config.metricsPublic, ...(tls ? { tls } : {}),
  });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const url = `${tls ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  const jobs = createJobRunner({
    store,
    clock: services.clock,
    owner: `${hostname()}:${process.pid}`,
    // Investigations move within a fraction of a second of their alert; the other jobs keep their own pace.
    pollMs: Math.min(config.jobPollMs, INVESTIGATION_POLL_MS),
    jobs: [
      { name: 'expire_pending_actions', intervalMs: config.jobPollMs, run: () => services.actions.expireDue(systemActor()) },
      { name: 'time_out_undelivered_actions', intervalMs: config.jobPollMs, run: () => services.actions.timeOutUndelivered(systemActor()) },
      // Containment that waited only on agents which have since gone offline is settled here.
      { name: 'settle_containment', intervalMs: config.jobPollMs, run: () => services.desiredState.settle() },
      // An indicator that expires by time leaves what the agents enforce at the next version.
      { name: 'lift_expired_indicators', intervalMs: config.jobPollMs, run: () => services.indicators.liftExpired() },
      // The planner's statistics follow the store's growth: on SQLite nothing else keeps them.
      { name: 'refresh_planner_statistics', intervalMs: 60 * 60_000, run: () => store.refreshStatistics() },
      { name: 'run_investigations', intervalMs: Math.min(config.jobPollMs, INVESTIGATION_POLL_MS), run: () => services.investigations.runDue() },
    ],
    onError: (job, error) => logger.error({ err: error, job }, 'job failed'),
  });
  jobs.start();
  ready = true;
  logger.info({ url, store: config.store.dialect }, 'Quell is listening');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      ready = false;
      await jobs.stop();
      await app.close();
      await services.desiredState.drain();
      await bus.close();
      await store.close();
      logger.info('Quell stopped');
    })();
    return closing;
  };
  if (options.handleSignals) {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        logger.info({ signal }, 'shutting down: finishing in-flight requests');
        void close().then(() => process.exit(0));
      });
    }
  }
  return { url, signingKeyId: signer.keyId, tlsFingerprint: tls?.fingerprint ?? null, generatedAdminPassword: generatedPassword, close };
}
