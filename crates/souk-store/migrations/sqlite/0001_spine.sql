-- The spine: accounts, merchants, products and their review, plans, balances and the ledger,
-- orders, instances with their lifecycle schedule, the event timeline and the job queue.
-- Instants are UNIX milliseconds; money is whole minor units (cents) of the row's currency.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '',
    verification_state TEXT NOT NULL DEFAULT 'unverified',
    verification_details TEXT,
    verification_reason TEXT,
    verification_submitted_at BIGINT,
    verification_decided_at BIGINT,
    verification_decided_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX accounts_verification_queue ON accounts (verification_state, verification_submitted_at);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE merchants (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE REFERENCES accounts (id),
    state TEXT NOT NULL,
    company_name TEXT NOT NULL,
    support_email TEXT NOT NULL,
    support_phone TEXT NOT NULL,
    business_licence_number TEXT NOT NULL,
    description TEXT NOT NULL,
    reason TEXT,
    submitted_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT
);
CREATE INDEX merchants_queue ON merchants (state, submitted_at);

CREATE TABLE products (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    product_type TEXT NOT NULL,
    state TEXT NOT NULL,
    signing_key_enc TEXT NOT NULL,
    listed_content TEXT,
    endpoint_url TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    listed_at BIGINT
);
CREATE INDEX products_by_merchant ON products (merchant_id);
CREATE INDEX products_by_state ON products (state);

CREATE TABLE product_revisions (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    number BIGINT NOT NULL,
    state TEXT NOT NULL,
    content TEXT NOT NULL,
    submitted_at BIGINT,
    due_at BIGINT,
    decided_at BIGINT,
    decided_by TEXT,
    reasons TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (product_id, number)
);
CREATE INDEX revisions_queue ON product_revisions (state, due_at);

CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    currency TEXT NOT NULL,
    monthly_price TEXT,
    yearly_price TEXT,
    position BIGINT NOT NULL,
    active BIGINT NOT NULL
);
CREATE INDEX plans_by_product ON plans (product_id, position);

CREATE TABLE balances (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    PRIMARY KEY (account_id, currency)
);

CREATE TABLE ledger_entries (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    balance_after_minor BIGINT NOT NULL,
    order_id TEXT,
    reference TEXT,
    memo TEXT NOT NULL,
    created_by TEXT,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (created_by, idempotency_key)
);
CREATE INDEX ledger_by_account ON ledger_entries (account_id, id);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    buyer_id TEXT NOT NULL REFERENCES accounts (id),
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    plan_id TEXT NOT NULL REFERENCES plans (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    instance_id TEXT NOT NULL,
    period TEXT NOT NULL,
    periods BIGINT NOT NULL,
    currency TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    idempotency_key TEXT,
    request_fingerprint TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (buyer_id, idempotency_key)
);
CREATE INDEX orders_by_buyer ON orders (buyer_id, id);
CREATE INDEX orders_by_instance ON orders (instance_id);

CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    buyer_id TEXT NOT NULL REFERENCES accounts (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    plan_id TEXT NOT NULL REFERENCES plans (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    order_id TEXT NOT NULL,
    state TEXT NOT NULL,
    period TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    next_transition_at BIGINT,
    version BIGINT NOT NULL,
    business_id TEXT NOT NULL UNIQUE,
    seller_instance_id TEXT,
    access_enc TEXT,
    failure_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX instances_due ON instances (next_transition_at) WHERE next_transition_at IS NOT NULL;
CREATE INDEX instances_by_buyer ON instances (buyer_id, id);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    order_id TEXT,
    instance_id TEXT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    actor TEXT
);
CREATE INDEX events_by_order ON events (order_id, id);
CREATE INDEX events_by_instance ON events (instance_id, id);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    instance_id TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_by_instance ON jobs (instance_id, id);
