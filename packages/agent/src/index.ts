export { DEFAULT_DRIFT_CHECK_SECONDS, driftCheckMs, startAgent, type RunningAgent, type AgentOptions } from './agent.ts';
export { DEFAULT_WATCHED_FOLDERS } from './antivirus-watch.ts';
export { enrolAgent, deviceFacts, setServerUrls, AGENT_VERSION } from './enrol.ts';
export { loadIdentity, DEFAULT_AGENT_DIR } from './identity.ts';
export { OFFBOARDED_EXIT_CODE, exitIfOffboarded } from './offboard.linux.ts';
export { type CommandRunner, systemRunner } from './runner.ts';
export { SimulationError, startFleet, type Fleet, type FleetOptions } from './simulator.ts';
