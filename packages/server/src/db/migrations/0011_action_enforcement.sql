-- What the agents had done about a containment action when it ended (JSON), kept because their later reports
-- speak of later states: while in force it is worked out from those reports; once ended, this is its record.
ALTER TABLE actions ADD COLUMN enforcement TEXT;
