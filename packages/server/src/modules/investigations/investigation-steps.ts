import { createEvidenceSteps } from './evidence-steps.ts';
import { createExpansionSteps } from './expansion-steps.ts';
import type { InvestigationsCore, InvestigationsServiceDeps } from './investigations.core.ts';
import type { Steps } from './investigation-state.ts';
import { createRemediationSteps } from './remediation-steps.ts';

/**
 * The durable steps of an investigation, in the order it goes through them:
 * collect the files its alerts name, ask the device for evidence, give each
 * file a verdict, look for the same files on other devices (waiting for an
 * analyst when they are many), ask those devices for evidence, propose
 * remediation, and wait for the actions. New alerts send a waiting
 * investigation back to collect.
 */
export function createSteps(deps: InvestigationsServiceDeps, core: InvestigationsCore): Steps {
  const evidence = createEvidenceSteps(deps, core);
  const expansion = createExpansionSteps(deps, core);
  const remediation = createRemediationSteps(deps, core);
  return {
    collect: evidence.collect,
    evidence: evidence.evidence,
    verdicts: evidence.verdicts,
    expand: expansion.expand,
    expand_decided: expansion.expand_decided,
    evidence_elsewhere: evidence.evidence_elsewhere,
    remediate: remediation.remediate,
    wait: remediation.wait,
  };
}
