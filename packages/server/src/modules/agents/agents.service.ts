import type { AgentsServiceDeps } from './agents.core.ts';
import { createAgentDelivery } from './agents.delivery.ts';
import { createAgentEnrolment } from './agents.enrolment.ts';
import { createAgentOffboarding } from './agents.offboarding.ts';
import { createAgentPackages } from './agents.packages.ts';
import { createAgentReports } from './agents.reports.ts';

export { AgentProtocolError, type AgentsServiceDeps } from './agents.core.ts';

/**
 * The agents service: enrolment and the agent side of the action
 * lifecycle. Its parts are cut along what happens between server and
 * agent — enrolling (enrolment), what a connected agent is given
 * (delivery), what it tells (reports), the packages it uploads (packages),
 * and its leaving (offboarding) — over shared checks of what agents sign.
 */
export function createAgentsService(deps: AgentsServiceDeps) {
  return {
    ...createAgentEnrolment(deps),
    ...createAgentDelivery(deps),
    ...createAgentReports(deps),
    ...createAgentPackages(deps),
    ...createAgentOffboarding(deps),
  };
}
export type AgentsService = ReturnType<typeof createAgentsService>;
