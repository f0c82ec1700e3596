import type { Settings } from '@quell/contracts';
import type { Store } from './db/store.ts';
import { type Clock, type Ids, systemClock, uuidIds } from './infra.ts';
import { createActionsRepository } from './modules/actions/actions.repository.ts';
import { type ActionsServiceDeps, createActionsService } from './modules/actions/actions.service.ts';
import { createAuditRepository } from './modules/audit/audit.repository.ts';
import { createAuditService } from './modules/audit/audit.service.ts';
import { createAuthService } from './modules/auth/auth.service.ts';
import { createDevicesRepository } from './modules/devices/devices.repository.ts';
import { createDevicesService } from './modules/devices/devices.service.ts';
import { createSettingsService } from './modules/settings/settings.service.ts';
import { createTokensService } from './modules/tokens/tokens.service.ts';
import { createUsersRepository } from './modules/users/users.repository.ts';
import { createUsersService } from './modules/users/users.service.ts';

export interface ServiceOptions {
  store: Store;
  settingsDefaults: Settings;
  clock?: Clock;
  ids?: Ids;
  onDecision?: ActionsServiceDeps['onDecision'];
}

/** Wires every service from what it uses; the HTTP app, the CLI and the benchmarks all start here. */
export function createServices(options: ServiceOptions) {
  const { store } = options;
  const clock = options.clock ?? systemClock;
  const ids = options.ids ?? uuidIds(clock);
  const audit = createAuditService({ store, repo: createAuditRepository(store.dialect), clock });
  const devicesRepo = createDevicesRepository();
  const usersRepo = createUsersRepository();
  const settings = createSettingsService({ store, audit, defaults: options.settingsDefaults });
  const actionsRepo = createActionsRepository();
  return {
    store,
    clock,
    audit,
    settings,
    actionsRepo,
    actions: createActionsService({ store, repo: actionsRepo, devices: devicesRepo, audit, settings, clock, ids, onDecision: options.onDecision }),
    devices: createDevicesService({ store, repo: devicesRepo, audit, clock, ids }),
    users: createUsersService({ store, repo: usersRepo, audit, clock, ids }),
    auth: createAuthService({ store, users: usersRepo, audit, clock }),
    tokens: createTokensService({ store, audit, clock, ids }),
  };
}
export type Services = ReturnType<typeof createServices>;
