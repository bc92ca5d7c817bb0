-- A product whose seller signs its answers (`Body-Sign`): souk checks every answer's signature.
ALTER TABLE products ADD COLUMN signed_answers BIGINT NOT NULL DEFAULT 0;
