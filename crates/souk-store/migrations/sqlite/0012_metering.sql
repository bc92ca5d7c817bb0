-- Metered billing. A plan's dimensions (JSON, as the merchant wrote them, normalized).
ALTER TABLE plans ADD COLUMN dimensions TEXT;

-- Usage as sellers report it. The key makes a record count once however often it is sent;
-- `charge_id` is set when the rater has charged it. `window_start` is the start of the period
-- whose quota and tiers the record counts against; `hour_at` the hour it is charged in.
CREATE TABLE usage_records (
    merchant_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    dimension TEXT NOT NULL,
    quantity_micros BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    hour_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    charge_id TEXT,
    PRIMARY KEY (merchant_id, record_id)
);
-- Only the records still to charge: small, and what the rater and the quota check read.
CREATE INDEX usage_unrated ON usage_records (instance_id, dimension, window_start, hour_at) WHERE charge_id IS NULL;

-- What has been charged per instance, dimension and period: each new charge is the rounded cost
-- of the new total less what was charged before, so a period's charges add up exactly.
CREATE TABLE usage_totals (
    instance_id TEXT NOT NULL,
    dimension TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    quantity_micros BIGINT NOT NULL,
    charged_minor BIGINT NOT NULL,
    PRIMARY KEY (instance_id, dimension, window_start)
);

-- One line per rating of an instance's dimension in an hour: what the buyer sees and the seller
-- is paid for. `entry_id` is the ledger entry (none when the usage cost nothing).
CREATE TABLE usage_charges (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    buyer_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    dimension TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hour_at BIGINT NOT NULL,
    quantity_micros BIGINT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    entry_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX usage_charges_by_instance ON usage_charges (instance_id, hour_at);
CREATE INDEX usage_charges_by_merchant ON usage_charges (merchant_id, hour_at);

-- While the buyer's account is in arrears, a metered instance's paid time ends when the arrears
-- began; what it was before is kept here and restored when the arrears are paid.
ALTER TABLE instances ADD COLUMN arrears_expiry BIGINT;
-- The scheduler looks for instances in arrears whose account has paid, every tick.
CREATE INDEX instances_in_arrears ON instances (buyer_id) WHERE arrears_expiry IS NOT NULL;
