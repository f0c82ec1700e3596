-- Why an investigation ended, in words, for its summary: what was remediated and what is left,
-- that nothing was found and what was looked at, the reason it failed, who ended it.
ALTER TABLE investigations ADD COLUMN conclusion TEXT;
