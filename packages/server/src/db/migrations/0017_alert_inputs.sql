-- Alerts from other detection engines keep what they said, and always find a device.

-- The detection rule, its MITRE ATT&CK techniques and tactics (JSON arrays), and where the
-- engine saw it (JSON AlertOrigin: its agent's id, name and address, the log, the lines before).
ALTER TABLE alerts ADD COLUMN rule_id TEXT;
ALTER TABLE alerts ADD COLUMN mitre_techniques TEXT NOT NULL DEFAULT '[]';
ALTER TABLE alerts ADD COLUMN mitre_tactics TEXT NOT NULL DEFAULT '[]';
ALTER TABLE alerts ADD COLUMN origin TEXT;

-- Which device an engine's own agent id stands for (wazuh: manager/agent id; elastic: agent.id or host.id),
-- so that a renamed host keeps its device.
CREATE TABLE device_source_ids (
  source TEXT NOT NULL,
  source_id TEXT NOT NULL,
  device_id TEXT NOT NULL REFERENCES devices(id),
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (source, source_id)
);
CREATE INDEX device_source_ids_device ON device_source_ids (device_id);

-- The addresses alerts reported for a device, newest last seen first: how an alert that names only an
-- address finds its device, and what containment of an unmanaged device blocks.
CREATE TABLE device_addresses (
  device_id TEXT NOT NULL REFERENCES devices(id),
  address TEXT NOT NULL,
  seen_at BIGINT NOT NULL,
  PRIMARY KEY (device_id, address)
);
CREATE INDEX device_addresses_address ON device_addresses (address, seen_at);

-- The detection source whose alert made Quell learn of the device (an unmanaged device); NULL for
-- devices registered by hand or by an agent's enrolment.
ALTER TABLE devices ADD COLUMN discovered_from TEXT;
-- Host names are matched without regard to case.
CREATE INDEX devices_name_lower ON devices (LOWER(name));
-- One unmanaged device per unknown host name, however many alerts arrive for it at once.
CREATE UNIQUE INDEX devices_discovered_name ON devices (LOWER(name)) WHERE discovered_from IS NOT NULL;
