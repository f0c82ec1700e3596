-- An investigation that finds its files on many other devices asks before following them there.
-- JSON: the devices found, when it asked, and (once decided) the decision.
ALTER TABLE investigations ADD COLUMN pending_expansion TEXT;
