/**
 * The console's one API client. Paths, bodies and answers are the contracts
 * package's: a renamed field or path does not compile here.
 */
import {
  API_PATHS, ERRORS,
  type ActionDetailSchema, type ActionPageSchema, type ActionSummarySchema, type BulkDecisionBody, type BulkResultSchema, type Device,
  type ErrorCode, type ExportActionsQuery, type InstancesSchema, type ListActionsQuery, type LoginBody, type Problem, type SessionInfoSchema,
} from '@quell/contracts';
import type { Static } from 'typebox';

export type SessionInfo = Static<typeof SessionInfoSchema>;
export type ActionPage = Static<typeof ActionPageSchema>;
export type ActionDetail = Static<typeof ActionDetailSchema>;
export type ActionSummary = Static<typeof ActionSummarySchema>;
export type BulkResult = Static<typeof BulkResultSchema>;
export type Instances = Static<typeof InstancesSchema>;

/** A problem response from the server, or a request that never got one. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode | 'network_error' | 'unexpected_response';
  readonly problem: Problem | null;

  constructor(status: number, code: ApiError['code'], message: string, problem: Problem | null = null, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
    this.code = code;
    this.problem = problem;
  }
}

type Path = (typeof API_PATHS)[keyof typeof API_PATHS];
type Query = Record<string, string | number | boolean | undefined>;

/** `/api/actions/:id` with `{ id }` → `/api/actions/0190…`, each value percent-encoded. */
export function pathOf(path: Path, params: Record<string, string> = {}): string {
  return path.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(params[name] ?? ''));
}

export function withQuery(path: string, query: Query = {}): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

/** The session's CSRF token, echoed as x-csrf-token on every write (plugins/auth.ts on the server). */
let csrfToken: string | null = null;

async function call<T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let response: Response;
  try {
    response = await fetch(url, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch (error) {
    throw new ApiError(0, 'network_error', 'The server cannot be reached; check the connection and try again', null, { cause: error });
  }
  const text = await response.text();
  const parsed: unknown = text ? safeJson(text) : null;
  if (!response.ok) {
    if (isProblem(parsed)) throw new ApiError(response.status, parsed.code as ErrorCode, parsed.detail || parsed.title, parsed);
    throw new ApiError(response.status, 'unexpected_response', `The server answered ${response.status} ${response.statusText}`);
  }
  return parsed as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function isProblem(value: unknown): value is Problem {
  return typeof value === 'object' && value !== null && typeof (value as Problem).code === 'string' && (value as Problem).code in ERRORS;
}

function remember(session: SessionInfo): SessionInfo {
  csrfToken = session.csrfToken;
  return session;
}

export const api = {
  async login(body: LoginBody): Promise<SessionInfo> {
    return remember(await call<SessionInfo>('POST', API_PATHS.login, body));
  },
  async me(): Promise<SessionInfo> {
    return remember(await call<SessionInfo>('GET', API_PATHS.me));
  },
  async logout(): Promise<void> {
    await call('POST', API_PATHS.logout);
    csrfToken = null;
  },
  listActions: (query: ListActionsQuery) => call<ActionPage>('GET', withQuery(API_PATHS.actions, query)),
  getAction: (id: string) => call<ActionDetail>('GET', pathOf(API_PATHS.action, { id })),
  approve: (body: BulkDecisionBody) => call<BulkResult>('POST', API_PATHS.approve, body),
  reject: (body: BulkDecisionBody) => call<BulkResult>('POST', API_PATHS.reject, body),
  undo: (body: BulkDecisionBody) => call<BulkResult>('POST', API_PATHS.undo, body),
  instances: (id: string) => call<Instances>('GET', pathOf(API_PATHS.actionInstances, { id })),
  undoInstances: (id: string, comment: string) => call<BulkResult>('POST', pathOf(API_PATHS.actionInstancesUndo, { id }), { comment }),
  summary: () => call<ActionSummary>('GET', API_PATHS.summary),
  getDevice: (id: string) => call<Device>('GET', pathOf(API_PATHS.device, { id })),
  listDevices: () => call<{ items: Device[] }>('GET', API_PATHS.devices),
  /** A plain link: the browser downloads the stream itself with the session cookie. */
  exportCsvUrl: (query: ExportActionsQuery) => withQuery(API_PATHS.exportCsv, query),
};
