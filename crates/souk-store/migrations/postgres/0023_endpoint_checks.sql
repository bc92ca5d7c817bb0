-- The last passing endpoint check of each product: what was checked (the endpoint, its protocol,
-- whether answers are signed, and the key, as one fingerprint) and when. A product is submitted
-- for review only while its draft would call what passed.
CREATE TABLE endpoint_checks (
    product_id TEXT PRIMARY KEY REFERENCES products (id),
    fingerprint TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);
