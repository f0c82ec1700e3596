import { ERRORS, type ErrorCode } from '@quell/contracts';

export interface ActionProblem { id: string; status?: string; decidedBy?: string | null }

/** The one error type services throw; the error handler turns it into a problem response. */
export class QuellError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly actions: ActionProblem[] | undefined;
  /** Whole seconds until a retry can succeed; sent as `Retry-After` (every 429 carries one). */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { actions?: ActionProblem[]; retryAfter?: number; cause?: unknown }) {
    super(detail ?? ERRORS[code].title, { cause: options?.cause });
    this.code = code;
    this.status = ERRORS[code].status;
    this.actions = options?.actions;
    this.retryAfter = options?.retryAfter;
  }
}
