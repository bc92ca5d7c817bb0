-- The protocol a product's endpoint speaks (`v2`, or the older `v1`), from its listed version.
ALTER TABLE products ADD COLUMN seller_protocol TEXT NOT NULL DEFAULT 'v2';
