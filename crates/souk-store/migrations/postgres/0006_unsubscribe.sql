-- What went back to the buyer for each order: all of it when provisioning failed, what the refund
-- rules allowed when the buyer unsubscribed. Paid = charged - refunded holds per order.
ALTER TABLE orders ADD COLUMN refunded_minor BIGINT NOT NULL DEFAULT 0;
UPDATE orders SET refunded_minor = amount_minor WHERE state = 'refunded';
