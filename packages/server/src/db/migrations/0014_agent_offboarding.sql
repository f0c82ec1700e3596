-- Offboarding in two steps: asked (the agent is told, signed, at once or when it comes back), then
-- done (its signed report, when the agent is also revoked).
ALTER TABLE agents ADD COLUMN offboard_requested_at BIGINT;
-- 1: the agent releases what Quell put in force; 0: it leaves it in force
ALTER TABLE agents ADD COLUMN offboard_release_effects INTEGER;
-- JSON: what the agent reported it did
ALTER TABLE agents ADD COLUMN offboard_report TEXT;
