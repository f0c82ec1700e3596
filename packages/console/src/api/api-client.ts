/**
 * The console's one API client. Paths, bodies and answers are the contracts
 * package's: a renamed field or path does not compile here.
 */
import {
  API_PATHS, ERRORS,
  type Action, type ActionActivitySchema, type ActionDetailSchema, type ActionPageSchema, type ActionSummarySchema, type Alert, type AlertPageSchema, type AuditPageSchema, type AuditVerification,
  type BulkDecisionBody, type BulkResultSchema, type CreateActionBody, type CreateDeviceGroupBody, type CreateEnrolmentTokenBody,
  type CreateIndicatorBody, type CreateTokenBody, type CreateUserBody, type CreatedEnrolmentTokenSchema, type CreatedTokenSchema, type Device, type DeviceGroup, type EnrolmentToken,
  type ErrorCode, type ExportActionsQuery, type FalsePositiveBody, type Incident, type Indicator, type IncidentDetailSchema, type InstancesSchema, type Investigation, type InvestigationDetailSchema, type ListActionsQuery, type ListInvestigationsQuery,
  type IndicatorHitRow, type ListAlertsQuery, type ListAuditQuery, type ListIndicatorHitsQuery, type ListIndicatorsQuery, type LoginBody, type Problem, type SessionInfoSchema, type Settings, type Token,
  type UpdateAlertBody, type UpdateIndicatorBody, type UpdateSettingsBody, type UpdateUserBody, type User,
} from '@quell/contracts';
import type { Static } from 'typebox';

export type SessionInfo = Static<typeof SessionInfoSchema>;
export type ActionPage = Static<typeof ActionPageSchema>;
export type ActionDetail = Static<typeof ActionDetailSchema>;
export type ActionSummary = Static<typeof ActionSummarySchema>;
export type ActionActivity = Static<typeof ActionActivitySchema>;
export type BulkResult = Static<typeof BulkResultSchema>;
export type Instances = Static<typeof InstancesSchema>;
export type InvestigationDetail = Static<typeof InvestigationDetailSchema>;
export type IncidentDetail = Static<typeof IncidentDetailSchema>;
export type AuditPage = Static<typeof AuditPageSchema>;
export type CreatedToken = Static<typeof CreatedTokenSchema>;
export type CreatedEnrolmentToken = Static<typeof CreatedEnrolmentTokenSchema>;
export type AlertPage = Static<typeof AlertPageSchema>;
/** The answer of POST /api/alerts/:id/false-positive (typed inline in the server's route, not yet a named schema in the contracts). */
export interface FalsePositiveResult { alert: Alert; undone: Action[]; indicators: Indicator[] }

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

/** A request body the server reads as CSV text, not JSON. */
class CsvBody {
  constructor(readonly text: string) {}
}

async function call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = body instanceof CsvBody ? 'text/csv' : 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let response: Response;
  try {
    const payload = body instanceof CsvBody ? body.text : JSON.stringify(body);
    response = await fetch(url, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: payload } : {}) });
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
  activity: () => call<ActionActivity>('GET', API_PATHS.activity),
  getDevice: (id: string) => call<Device>('GET', pathOf(API_PATHS.device, { id })),
  listDevices: () => call<{ items: Device[] }>('GET', API_PATHS.devices),
  createAction: (body: CreateActionBody) => call<Action>('POST', API_PATHS.actions, body),
  listDeviceGroups: () => call<{ items: DeviceGroup[] }>('GET', API_PATHS.deviceGroups),
  createDeviceGroup: (body: CreateDeviceGroupBody) => call<DeviceGroup>('POST', API_PATHS.deviceGroups, body),
  listInvestigations: (query: ListInvestigationsQuery = {}) => call<{ items: Investigation[] }>('GET', withQuery(API_PATHS.investigations, query)),
  getInvestigation: (id: string) => call<InvestigationDetail>('GET', pathOf(API_PATHS.investigation, { id })),
  startInvestigation: (deviceId: string) => call<Investigation>('POST', API_PATHS.investigations, { deviceId }),
  terminateInvestigation: (id: string, comment: string) => call<Investigation>('POST', pathOf(API_PATHS.investigationTerminate, { id }), { comment }),
  retryInvestigation: (id: string, comment: string) => call<Investigation>('POST', pathOf(API_PATHS.investigationRetry, { id }), { comment }),
  decideExpansion: (id: string, approve: boolean, comment: string) => call<Investigation>('POST', pathOf(API_PATHS.investigationExpansion, { id }), { approve, comment }),
  listIncidents: () => call<{ items: Incident[] }>('GET', API_PATHS.incidents),
  getIncident: (id: string) => call<IncidentDetail>('GET', pathOf(API_PATHS.incident, { id })),
  updateIncident: (id: string, status: Incident['status']) => call<Incident>('PATCH', pathOf(API_PATHS.incident, { id }), { status }),
  getAlert: (id: string) => call<Alert>('GET', pathOf(API_PATHS.alert, { id })),
  listAlerts: (query: ListAlertsQuery) => call<AlertPage>('GET', withQuery(API_PATHS.alerts, query)),
  updateAlert: (id: string, body: UpdateAlertBody) => call<Alert>('PATCH', pathOf(API_PATHS.alert, { id }), body),
  falsePositive: (id: string, body: FalsePositiveBody) => call<FalsePositiveResult>('POST', pathOf(API_PATHS.alertFalsePositive, { id }), body),
  listIndicators: (query: ListIndicatorsQuery) => call<{ items: Indicator[] }>('GET', withQuery(API_PATHS.indicators, query)),
  createIndicator: (body: CreateIndicatorBody) => call<Indicator>('POST', API_PATHS.indicators, body),
  /** Where indicators matched: per indicator and device, most recent first. */
  listIndicatorHits: (query: ListIndicatorHitsQuery) => call<{ items: IndicatorHitRow[] }>('GET', withQuery(API_PATHS.indicatorHits, query)),
  updateIndicator: (id: string, body: UpdateIndicatorBody) => call<Indicator>('PATCH', pathOf(API_PATHS.indicator, { id }), body),
  /** Expires it now; the server keeps it for the record. */
  expireIndicator: (id: string) => call<Indicator>('DELETE', pathOf(API_PATHS.indicator, { id })),
  /** All rows or none; a bad row comes back as a problem naming its line. */
  importIndicators: (csv: string) => call<{ items: Indicator[] }>('POST', API_PATHS.indicatorsImport, new CsvBody(csv)),
  /** A plain link: the browser downloads the active indicators with the session cookie. */
  indicatorsCsvUrl: () => API_PATHS.indicatorsCsv,
  listAudit: (query: ListAuditQuery) => call<AuditPage>('GET', withQuery(API_PATHS.audit, query)),
  verifyAudit: () => call<AuditVerification>('GET', API_PATHS.auditVerify),
  listUsers: () => call<{ items: User[] }>('GET', API_PATHS.users),
  createUser: (body: CreateUserBody) => call<User>('POST', API_PATHS.users, body),
  updateUser: (id: string, body: UpdateUserBody) => call<User>('PATCH', pathOf(API_PATHS.user, { id }), body),
  listTokens: () => call<{ items: Token[] }>('GET', API_PATHS.tokens),
  createToken: (body: CreateTokenBody) => call<CreatedToken>('POST', API_PATHS.tokens, body),
  revokeToken: (id: string) => call<Token>('DELETE', pathOf(API_PATHS.token, { id })),
  createEnrolmentToken: (body: CreateEnrolmentTokenBody) => call<CreatedEnrolmentToken>('POST', API_PATHS.enrolmentTokens, body),
  listEnrolmentTokens: () => call<{ items: EnrolmentToken[] }>('GET', API_PATHS.enrolmentTokens),
  revokeEnrolmentToken: (id: string) => call<EnrolmentToken>('DELETE', pathOf(API_PATHS.enrolmentToken, { id })),
  getSettings: () => call<Settings>('GET', API_PATHS.settings),
  updateSettings: (body: UpdateSettingsBody) => call<Settings>('PATCH', API_PATHS.settings, body),
  /** The investigation package a completed collect action produced; a plain link, downloaded with the session cookie. */
  packageUrl: (id: string) => pathOf(API_PATHS.actionPackage, { id }),
  /** A plain link: the browser downloads the stream itself with the session cookie. */
  exportCsvUrl: (query: ExportActionsQuery) => withQuery(API_PATHS.exportCsv, query),
};
