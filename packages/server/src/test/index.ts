/**
 * `@quell/server/testing`: what the other packages' tests need of a real
 * server — the app on a real database with its users, enrolled agents, the
 * command signer — and nothing production code may use.
 */
export { PASSWORD, TEST_DIALECT, type TestContext, type TestUser, liveClock, setupTestApp, useTestApp } from './helper.ts';
export { type TestAgent, enrolTestAgent, signedByAgent } from './agents.ts';
export { type TestDatabase, createTestDatabase } from './store.ts';
export { createCommandSigner } from '../command-signer.ts';
export { systemActor } from '../actor.ts';
