-- Containment: desired state every agent enforces, and what each agent last applied.

-- One row per kind of fleet-wide state; `jws` is the signed state of `version`.
CREATE TABLE desired_state (
  name TEXT PRIMARY KEY,
  version BIGINT NOT NULL,
  jws TEXT,
  updated_at BIGINT NOT NULL
);
INSERT INTO desired_state (name, version, jws, updated_at) VALUES ('containment', 0, NULL, 0);

-- The state version at which a containment action (or its release) took effect.
ALTER TABLE actions ADD COLUMN state_version BIGINT;

-- The last state version each agent reported, with what it could not enforce.
ALTER TABLE agents ADD COLUMN state_version BIGINT;
ALTER TABLE agents ADD COLUMN state_error TEXT;
ALTER TABLE agents ADD COLUMN state_failures TEXT;
