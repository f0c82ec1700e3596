-- The step a failed investigation could not get past: an analyst's retry starts again from there.
ALTER TABLE investigations ADD COLUMN failed_step TEXT;
