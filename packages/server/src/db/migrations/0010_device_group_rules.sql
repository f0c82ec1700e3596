-- A device belongs to the highest-ranked group whose rule matches it, unless an administrator put it in one.
-- JSON: { "namePattern": "web-*", "platform": "linux" }; NULL: the group takes devices only by hand.
ALTER TABLE device_groups ADD COLUMN rule TEXT;
-- 1 when an administrator chose the device's group: rules leave it there.
ALTER TABLE devices ADD COLUMN group_pinned INTEGER NOT NULL DEFAULT 0;
