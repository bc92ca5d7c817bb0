-- Operator promotions (a percentage off a product's orders between a start and an end), and each
-- order's list price and discount: amount = list - discount.
CREATE TABLE promotions (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    percent_off BIGINT NOT NULL,
    period TEXT,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    created_by TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX promotions_by_product ON promotions (product_id, ends_at);

ALTER TABLE orders ADD COLUMN list_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN discount_minor BIGINT NOT NULL DEFAULT 0;
UPDATE orders SET list_minor = amount_minor;
