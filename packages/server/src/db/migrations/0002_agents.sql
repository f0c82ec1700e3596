-- Agents: enrolment tokens, enrolled agents, and the signed command of each queued action.

CREATE TABLE enrolment_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  uses_left INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT
);

-- One row per device that runs an agent; public_key is the agent's Ed25519 JWK.
CREATE TABLE agents (
  device_id TEXT PRIMARY KEY REFERENCES devices(id),
  public_key TEXT NOT NULL,
  facts TEXT NOT NULL,
  enrolled_at BIGINT NOT NULL,
  revoked_at BIGINT
);

-- Signed when the action becomes queued, so that what the agent runs is what was decided:
-- an edited row cannot change a command without breaking its signature.
ALTER TABLE actions ADD COLUMN command_jws TEXT;
-- When a queued action gives up waiting for its device.
ALTER TABLE actions ADD COLUMN deliver_by BIGINT;
CREATE INDEX actions_device_status ON actions (device_id, status);
CREATE INDEX actions_queued_deadline ON actions (status, deliver_by);
