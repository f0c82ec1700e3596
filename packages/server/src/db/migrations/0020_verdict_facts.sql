-- What a verdict was made of: every fact known about the file, in words, and the
-- SHA-1 and MD5 that alerts may know it by (until the device hashes it, a file
-- known only by those has the value "sha1:…", "md5:…" or "path:…").
ALTER TABLE investigation_entities ADD COLUMN facts TEXT;
ALTER TABLE investigation_entities ADD COLUMN sha1 TEXT;
ALTER TABLE investigation_entities ADD COLUMN md5 TEXT;

-- Where each file was seen, by hash and device: from the devices' evidence and their
-- alerts. How many devices have a hash is one of the facts a verdict weighs.
CREATE TABLE file_sightings (
  sha256 TEXT NOT NULL,
  device_id TEXT NOT NULL,
  path TEXT,
  first_seen BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  PRIMARY KEY (sha256, device_id)
);
