-- A plan may be sold once for good (a one-time purchase whose instance never expires).
ALTER TABLE plans ADD COLUMN one_time_price TEXT;
