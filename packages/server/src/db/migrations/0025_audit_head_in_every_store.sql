-- Each audit entry is appended to the head recorded in settings (locked there on PostgreSQL), no
-- longer to the last entry found: every store gets that head now. Where entries were written before
-- the head was recorded, it is the last of them; in a store with none, the chain's start.
INSERT INTO settings (key, value)
SELECT 'audit_head', '{"seq":' || seq || ',"hash":"' || hash || '"}' FROM audit_log
WHERE seq = (SELECT max(seq) FROM audit_log) AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'audit_head');

INSERT INTO settings (key, value)
SELECT 'audit_head', '{"seq":0,"hash":"0000000000000000000000000000000000000000000000000000000000000000"}'
WHERE NOT EXISTS (SELECT 1 FROM settings WHERE key = 'audit_head');
