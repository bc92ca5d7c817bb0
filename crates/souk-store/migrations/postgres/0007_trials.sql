-- Free trials: a plan may offer N days; a verified buyer takes one at most once per product
-- (the primary key of trials decides it, also under concurrent requests); a trial instance is
-- marked until it is converted to a paid subscription.
ALTER TABLE plans ADD COLUMN trial_days BIGINT;
ALTER TABLE instances ADD COLUMN trial BIGINT NOT NULL DEFAULT 0;

CREATE TABLE trials (
    buyer_id TEXT NOT NULL REFERENCES accounts (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    instance_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (buyer_id, product_id)
);
