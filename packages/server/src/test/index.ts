/**
 * `@quell/server/testing`: what the other packages' tests and the benchmarks
 * need of a real server — the app on a real database with its users, enrolled
 * agents, the command signer, `quell server` in a process of its own — and
 * nothing production code may use.
 */
export { PASSWORD, TEST_DIALECT, type TestContext, type TestUser, liveClock, setupTestApp, useTestApp } from './helper.ts';
export { type TestAgent, enrolTestAgent, signedByAgent } from './agents.ts';
export { type TestDatabase, createTestDatabase } from './store.ts';
export { createCommandSigner } from '../command-signer.ts';
export { systemActor } from '../actor.ts';
export { QUELL, quellCli, startQuellServer } from './server-process.ts';
