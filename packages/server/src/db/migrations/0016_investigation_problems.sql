-- A step that fails (an agent's answer that is not what it should be, a step that cannot run) is
-- retried a few times, then the investigation goes on with what it has; what went wrong is kept.
-- JSON array: each failure with its step, when, and why; shown on the investigation's summary.
ALTER TABLE investigations ADD COLUMN problems TEXT;
-- Failures of the current step in a row; back to 0 when a step succeeds.
ALTER TABLE investigations ADD COLUMN step_attempts INTEGER NOT NULL DEFAULT 0;
