import { type Role, ROLES, type Permission, ROLE_PERMISSIONS, type CreateActionBody } from '@quell/contracts';
import type { FastifyBaseLogger, FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { type Actor, systemActor } from '../actor.ts';
import { type AppOptions, buildApp } from '../app.ts';
import type { Store } from '../db/store.ts';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { type Clock, uuidIds } from '../infra.ts';
import { type AgentGateway, createAgentGateway } from '../modules/agents/agents.gateway.ts';
import { type CommandSigner, createCommandSigner } from '../command-signer.ts';
import { createMetrics } from '../plugins/metrics.ts';
import { type Services, actionGaugeSources, createServices } from '../services.ts';
import { type TestDatabase, createTestDatabase, openMigratedStore } from './store.ts';

export { TEST_DIALECT } from './store.ts';

/** A clock the test moves by hand. */
export interface TestClock extends Clock { advance(ms: number): void; set(ms: number): void }
export function testClock(start = Date.parse('2026-11-01T12:00:00Z')): TestClock {
  let now = start;
  return { now: () => now, advance: (ms) => void (now += ms), set: (ms) => void (now = ms) };
}

/** Real time, which a test can still move forward: for tests where agents check expiry against their own clock. */
export function liveClock(): TestClock {
  let offset = 0;
  return { now: () => Date.now() + offset, advance: (ms) => void (offset += ms), set: (ms) => void (offset = ms - Date.now()) };
}

export const PASSWORD = 'correct horse battery staple';

export interface TestUser { id: string; username: string; role: Role; token: string; actor: Actor }

export interface TestContext {
  db: TestDatabase;
  store: Store;
  /** The server's address when started with `listen` (agents connect here), else ''. */
  url: string;
  clock: TestClock;
  services: Services;
  app: FastifyInstance;
  /** One user per role, each with an all-scopes bearer token. */
  users: Record<Role, TestUser>;
  /** Headers that authenticate as the given user. */
  as(user: TestUser): Record<string, string>;
  request(user: TestUser | null, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown): Promise<LightMyRequestResponse>;
  createDevice(options?: { groupId?: string; platform?: 'linux' | 'windows' | 'macos'; name?: string }): Promise<string>;
  createAction(overrides?: Partial<CreateActionBody> & { by?: TestUser }): Promise<string>;
  /** Drives a queued action through the agent-facing service methods: delivered, then completed (or failed). */
  complete(actionId: string, outcome?: 'completed' | 'failed'): Promise<void>;
  /**
   * Stops the server (HTTP, agent gateway, database connection) and starts a
   * new one on the same database, signing key and address, as after a crash
   * or an upgrade; `whileDown` runs in between. `store`, `services` and `app`
   * are the new server's afterwards; users and their tokens stay valid.
   */
  restart(whileDown?: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  clock?: TestClock;
  /** Listen on a real port (agents connect there); with `tls`, over HTTPS and WSS. */
  listen?: { host: string; tls?: { key: string; cert: string } };
  /** The command-signing key, for tests that sign commands themselves; by default a new key per test app. */
  signer?: CommandSigner;
  /** Passed to the agent gateway (with `listen`), e.g. a short handshake timeout. */
  gateway?: { handshakeTimeoutMs?: number; catchUpMs?: number };
  /** The dispatch bus loses every message (new commands, new states), as when a replica dies before telling the others. */
  loseDispatches?: boolean;
  /** Where the agent gateway logs; silent by default (debug with QUELL_TEST_VERBOSE). */
  gatewayLog?: FastifyBaseLogger;
  /** The built web console to serve, for the browser tests. */
  consoleDir?: string;
  /** Passed to buildApp: the general rate limit, public /metrics, the request timeout, a logger to read. */
  app?: Pick<AppOptions, 'rateLimit' | 'metricsPublic' | 'requestTimeoutMs' | 'logger'>;
}

/**
 * Builds the real app on a fresh real database (SQLite or PostgreSQL per
 * QUELL_TEST_DB) and closes it after the file's tests.
 */
export async function setupTestApp(options: TestAppOptions = {}): Promise<TestContext> {
  const db = await createTestDatabase();
  const clock = options.clock ?? testClock();
  const signer = options.signer ?? createCommandSigner();
  const gatewayLog = options.gatewayLog ?? pino({ level: process.env.QUELL_TEST_VERBOSE ? 'debug' : 'silent' });

  /** One server process's worth: its own database connection, services, gateway and listener. */
  async function startServer(port: number): Promise<{ store: Store; services: Services; app: FastifyInstance; url: string }> {
    const store = await openMigratedStore(db.location);
    const metrics = createMetrics();
    let gateway: AgentGateway | undefined;
    const services = createServices({ store, clock, ids: uuidIds(clock), signer, onDecision: metrics.observeDecision, dispatch: (ids) => options.loseDispatches || gateway?.dispatch(ids), publishState: () => options.loseDispatches || gateway?.publishState(),
      onDevicesMoved: (deviceIds) => deviceIds.forEach((id) => gateway?.reconnect(id, 'moved to another device group')) });
    metrics.bind(actionGaugeSources(services));
    if (options.listen) gateway = createAgentGateway({ agents: services.agents, log: gatewayLog, ...options.gateway });
    const tls = options.listen?.tls;
    const app = await buildApp({ services, metrics, publicUrl: 'http://127.0.0.1', gateway, consoleDir: options.consoleDir, ...options.app, ...(tls ? { tls } : {}) });
    let url = '';
    if (options.listen) {
      await app.listen({ host: options.listen.host, port });
      const address = app.server.address() as AddressInfo;
      url = `${tls ? 'https' : 'http'}://${options.listen.host}:${address.port}`;
    }
    return { store, services, app, url };
  }
  const { store, services, app, url } = await startServer(0);

  const users = {} as Record<Role, TestUser>;
  for (const role of ROLES) users[role] = await createUser(services, role, role.replace('_', '-'));

  const as = (user: TestUser): Record<string, string> => ({ authorization: `Bearer ${user.token}` });
  const ctx: TestContext = {
    db, store, url, clock, services, app, users, as,
    request: (user, method, url, body) => ctx.app.inject({ method, url, headers: user ? as(user) : {}, ...(body !== undefined ? { payload: body as object } : {}) }),
    async createDevice(opts = {}) {
      const device = await ctx.services.devices.create(systemActor(), { name: opts.name ?? `host-${Math.random().toString(36).slice(2, 8)}`, platform: opts.platform ?? 'linux', ...(opts.groupId ? { groupId: opts.groupId } : {}) });
      return device.id;
    },
    async createAction(overrides = {}) {
      const { by, ...body } = overrides;
      const deviceId = body.deviceId ?? (await ctx.createDevice());
      const action = await ctx.services.actions.create((by ?? users.security_operator).actor, {
        type: 'isolate_device', entity: { name: 'device' }, source: 'automated_investigation', status: 'pending_approval', ...body, deviceId,
      } as CreateActionBody);
      return action.id;
    },
    async complete(actionId, outcome = 'completed') {
      const agent = systemActor('agent');
      await ctx.services.actions.recordDelivery(agent, actionId);
      await ctx.services.actions.recordResult(agent, actionId, outcome === 'completed' ? { outcome, output: 'done' } : { outcome, error: 'it broke' });
    },
    async restart(whileDown) {
      await ctx.app.close();
      await ctx.services.desiredState.drain();
      await ctx.store.close();
      await whileDown?.();
      Object.assign(ctx, await startServer(ctx.url ? Number(new URL(ctx.url).port) : 0));
    },
    async close() {
      await ctx.app.close();
      await ctx.services.desiredState.drain();
      await ctx.store.close();
      await db.drop();
    },
  };
  return ctx;
}

/** setupTestApp() for a whole test file: built before its tests, closed after them. */
export function useTestApp(options: TestAppOptions = {}): () => TestContext {
  let ctx: TestContext | undefined;
  beforeAll(async () => {
    ctx = await setupTestApp(options);
  });
  afterAll(async () => ctx?.close());
  return () => ctx!;
}

export async function createUser(services: Services, role: Role, username: string, groupIds: string[] = []): Promise<TestUser> {
  const user = await services.users.create(systemActor(), { username, role, password: PASSWORD, deviceGroupIds: groupIds });
  const actor: Actor = { kind: 'user', userId: user.id, name: username, role, scopes: null, groupIds: groupIds.length ? groupIds : null, sourceIp: null };
  const scopes = ROLE_PERMISSIONS[role] as readonly Permission[];
  const { secret } = await services.tokens.create(systemActor(), { name: `${username} test token`, scopes: [...scopes], expiresInDays: 30 }, actor);
  return { id: user.id, username, role, token: secret, actor };
}
