import { createActionCommands } from './actions.commands.ts';
import { type ActionsServiceDeps, createActionsCore } from './actions.core.ts';
import { createActionReadModel } from './actions.read-model.ts';
import { createActionReports } from './actions.reports.ts';
import { createActionSweeps } from './actions.sweeps.ts';

export { AUTOMATION, type ActionsServiceDeps, alreadyOpen } from './actions.core.ts';
export type { AgentResult } from './actions.reports.ts';

/**
 * The actions service: the one writer of action statuses. Its parts are
 * cut along who asks — analysts and automation (commands), agents
 * (reports), the clock (sweeps), readers (the read model) — over one core that
 * holds the status writer and tells agents after commit.
 */
export function createActionsService(deps: ActionsServiceDeps) {
  const core = createActionsCore(deps);
  return {
    ...createActionCommands(deps, core),
    ...createActionReports(deps, core),
    ...createActionSweeps(deps, core),
    ...createActionReadModel(deps),
  };
}
export type ActionsService = ReturnType<typeof createActionsService>;
