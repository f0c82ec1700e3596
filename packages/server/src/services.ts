import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Settings } from '@quell/contracts';
import type { Store } from './db/store.ts';
import { type Clock, type Ids, systemClock, uuidIds } from './infra.ts';
import type { ActionGaugeSources } from './plugins/metrics.ts';
import { createAgentsRepository } from './modules/agents/agents.repository.ts';
import { createAgentsService } from './modules/agents/agents.service.ts';
import { type CommandSigner, createCommandSigner } from './command-signer.ts';
import { createActionsRepository } from './modules/actions/actions.repository.ts';
import { type ActionsServiceDeps, createActionsService } from './modules/actions/actions.service.ts';
import { createAuditRepository } from './modules/audit/audit.repository.ts';
import { createAuditService } from './modules/audit/audit.service.ts';
import { createAlertsRepository } from './modules/alerts/alerts.repository.ts';
import { createAlertsService } from './modules/alerts/alerts.service.ts';
import { createAuthService } from './modules/auth/auth.service.ts';
import { createSessionsRepository } from './modules/auth/sessions.repository.ts';
import { createIncidentsRepository } from './modules/incidents/incidents.repository.ts';
import { createIncidentsService } from './modules/incidents/incidents.service.ts';
import { createIndicatorsService } from './modules/indicators/indicators.service.ts';
import { createIndicatorsRepository } from './modules/indicators/indicators.repository.ts';
import { createInvestigationsRepository } from './modules/investigations/investigations.repository.ts';
import { createInvestigationsService } from './modules/investigations/investigations.service.ts';
import { createDesiredStateService } from './modules/desired-state/desired-state.service.ts';
import { createDesiredStateRepository } from './modules/desired-state/desired-state.repository.ts';
import { desiredStateSignedAt, writeDesiredState } from './modules/desired-state/desired-state.ts';
import { createDevicesRepository } from './modules/devices/devices.repository.ts';
import { createDevicesService } from './modules/devices/devices.service.ts';
import { createSettingsRepository } from './modules/settings/settings.repository.ts';
import { createSettingsService } from './modules/settings/settings.service.ts';
import { createTokensRepository } from './modules/tokens/tokens.repository.ts';
import { createTokensService } from './modules/tokens/tokens.service.ts';
import { createUsersRepository } from './modules/users/users.repository.ts';
import { createUsersService } from './modules/users/users.service.ts';

/** Settings until an administrator changes them (PATCH /api/settings). */
export const DEFAULT_SETTINGS: Settings = { pendingExpiryHours: 168, fourEyesActionTypes: [], deliveryWindowHours: 168 };

export interface ServiceOptions {
  store: Store;
  settingsDefaults?: Partial<Settings>;
  clock?: Clock;
  ids?: Ids;
  onDecision?: ActionsServiceDeps['onDecision'];
  /** Signs agent commands with the key of loadOrCreateSigningKey; without one, a throwaway key no agent trusts. */
  signer?: CommandSigner;
  /** Where uploaded investigation packages are kept (the data directory's packages/). */
  packagesDir?: string;
  /** Told of devices with new queued actions (the dispatch bus). */
  dispatch?: ActionsServiceDeps['dispatch'];
  /** Told of each new version of the desired state (the dispatch bus). */
  publishState?: ActionsServiceDeps['publishState'];
  /** Told of devices that changed device group (their agents reconnect to take up the group's desired state). */
  onDevicesMoved?: (deviceIds: string[]) => void;
  /** Which process runs investigation steps, for their leases; host and pid by default. */
  owner?: string;
  /** Where failures of background work (writing agents' reports) go. */
  onError?: (error: unknown) => void;
}

/** Wires every service from what it uses; the HTTP app, the CLI and the benchmarks all start here. */
export function createServices(options: ServiceOptions) {
  const { store } = options;
  const clock = options.clock ?? systemClock;
  const ids = options.ids ?? uuidIds(clock);
  const audit = createAuditService({ store, repo: createAuditRepository(store.dialect), clock });
  const devicesRepo = createDevicesRepository();
  const usersRepo = createUsersRepository();
  const tokensRepo = createTokensRepository();
  const settings = createSettingsService({ store, repo: createSettingsRepository(), audit, defaults: { ...DEFAULT_SETTINGS, ...options.settingsDefaults } });
  const actionsRepo = createActionsRepository();
  const signer = options.signer ?? createCommandSigner();
  const indicatorsRepo = createIndicatorsRepository();
  const indicators = createIndicatorsService({
    store, repo: indicatorsRepo, audit, clock, ids, publishState: options.publishState,
    state: { write: (trx) => writeDesiredState(trx, signer, clock.now()), signedAt: desiredStateSignedAt },
  });
  const actions = createActionsService({
    store, repo: actionsRepo, devices: devicesRepo, audit, settings, clock, ids, onDecision: options.onDecision, signer, dispatch: options.dispatch, publishState: options.publishState,
    allowing: indicators.allowing,
  });
  const investigations = createInvestigationsService({
    store, repo: createInvestigationsRepository(), indicators: indicatorsRepo, actions, audit, settings, clock, ids, owner: options.owner ?? `${hostname()}:${process.pid}`,
  });
  const incidents = createIncidentsService({ store, repo: createIncidentsRepository(), audit, clock, ids });
  const alerts = createAlertsService({ store, repo: createAlertsRepository(), devices: devicesRepo, audit, clock, ids, actions, indicators, onCreated: [incidents.onAlert, investigations.onAlert] });
  const desiredState = createDesiredStateService({ store, repo: createDesiredStateRepository(), actions, clock, onError: options.onError ?? ((error) => console.error(error)) });
  return {
    store,
    clock,
    audit,
    settings,
    actionsRepo,
    actions,
    desiredState,
    agents: createAgentsService({ store, repo: createAgentsRepository(), actions, actionsRepo, audit, desiredState, alerts, signer, clock, ids, packagesDir: options.packagesDir ?? join(tmpdir(), 'quell-packages'), dispatch: options.dispatch }),
    indicators,
    alerts,
    incidents,
    investigations,
    devices: createDevicesService({ store, repo: devicesRepo, audit, clock, ids, onMoved: options.onDevicesMoved }),
    users: createUsersService({ store, repo: usersRepo, audit, clock, ids }),
    auth: createAuthService({ store, users: usersRepo, sessions: createSessionsRepository(), tokens: tokensRepo, audit, clock }),
    tokens: createTokensService({ store, repo: tokensRepo, audit, clock, ids }),
  };
}
export type Services = ReturnType<typeof createServices>;

/** What /metrics reads of the actions at scrape time. */
export function actionGaugeSources(services: Services): ActionGaugeSources {
  return {
    countByStatusAndType: () => services.actionsRepo.countByStatusAndType(services.store.db),
    pendingByType: () => services.actionsRepo.pendingByType(services.store.db, null),
    now: () => services.clock.now(),
  };
}
