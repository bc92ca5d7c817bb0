-- A seller job's lane is its instance's merchant: a node runs only so many jobs of one lane at
-- once, so a seller that hangs holds up its own calls and not everyone else's.
ALTER TABLE jobs ADD COLUMN lane TEXT;
