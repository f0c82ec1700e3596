-- Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are epoch milliseconds (BIGINT); JSON is TEXT; booleans are 0/1.

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  csrf_token TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(id),
  secret_hash TEXT NOT NULL,
  scopes TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT
);

CREATE TABLE device_groups (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  rank INTEGER NOT NULL,
  automation_level TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

-- A user with no rows here is unscoped and sees every device group.
CREATE TABLE user_device_groups (
  user_id TEXT NOT NULL REFERENCES users(id),
  group_id TEXT NOT NULL REFERENCES device_groups(id),
  PRIMARY KEY (user_id, group_id)
);

CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  platform TEXT NOT NULL,
  group_id TEXT REFERENCES device_groups(id),
  created_at BIGINT NOT NULL,
  last_seen_at BIGINT
);

CREATE TABLE actions (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  status TEXT NOT NULL,
  entity_type TEXT NOT NULL,
  entity_name TEXT NOT NULL,
  entity_sha256 TEXT,
  entity_path TEXT,
  parameters TEXT NOT NULL,
  device_id TEXT NOT NULL REFERENCES devices(id),
  device_name TEXT NOT NULL,
  -- copied from the device at creation so that scoping never needs a join
  group_id TEXT,
  source TEXT NOT NULL,
  investigation_id TEXT,
  incident_id TEXT,
  approval_id TEXT,
  requested_by TEXT NOT NULL,
  requested_by_user_id TEXT,
  requested_at BIGINT NOT NULL,
  comment TEXT,
  decided_by TEXT,
  decided_at BIGINT,
  decision_comment TEXT,
  expires_at BIGINT,
  updated_at BIGINT NOT NULL,
  undo_of TEXT REFERENCES actions(id),
  undone_by TEXT,
  result TEXT
);
-- Pending tab: status + time; History tab: time with one filter.
CREATE INDEX actions_status_requested ON actions (status, requested_at, id);
CREATE INDEX actions_requested ON actions (requested_at, id);
CREATE INDEX actions_type_requested ON actions (type, requested_at, id);
CREATE INDEX actions_source_requested ON actions (source, requested_at, id);
CREATE INDEX actions_device_requested ON actions (device_id, requested_at, id);
CREATE INDEX actions_group_requested ON actions (group_id, requested_at, id);
CREATE INDEX actions_investigation ON actions (investigation_id, requested_at, id);
CREATE INDEX actions_decided_by ON actions (decided_by, requested_at, id);
CREATE INDEX actions_updated ON actions (updated_at, id);
CREATE INDEX actions_pending_expiry ON actions (status, expires_at);
CREATE INDEX actions_sha256 ON actions (entity_sha256, type, status);

CREATE TABLE action_events (
  id TEXT PRIMARY KEY,
  action_id TEXT NOT NULL REFERENCES actions(id),
  at BIGINT NOT NULL,
  event TEXT NOT NULL,
  from_status TEXT,
  to_status TEXT NOT NULL,
  actor TEXT NOT NULL,
  comment TEXT
);
CREATE INDEX action_events_action ON action_events (action_id, at);

-- Append-only and hash-chained: hash = sha256(prev_hash + canonical row).
CREATE TABLE audit_log (
  seq BIGINT PRIMARY KEY,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  source_ip TEXT,
  kind TEXT NOT NULL,
  target_type TEXT NOT NULL,
  target_id TEXT,
  before_json TEXT,
  after_json TEXT,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target_id);

CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- Durable jobs: claimed with a lease, so a crashed process's job runs again
-- and two processes never hold the same job at once.
CREATE TABLE jobs (
  name TEXT PRIMARY KEY,
  run_at BIGINT NOT NULL,
  locked_by TEXT,
  locked_until BIGINT,
  last_run_at BIGINT,
  last_error TEXT
);
