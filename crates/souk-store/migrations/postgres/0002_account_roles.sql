-- Operator roles as rows instead of a comma-separated column.
CREATE TABLE account_roles (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    role TEXT NOT NULL,
    PRIMARY KEY (account_id, role)
);
INSERT INTO account_roles (account_id, role)
    SELECT id, 'reviewer' FROM accounts WHERE ',' || roles || ',' LIKE '%,reviewer,%';
INSERT INTO account_roles (account_id, role)
    SELECT id, 'operations' FROM accounts WHERE ',' || roles || ',' LIKE '%,operations,%';
INSERT INTO account_roles (account_id, role)
    SELECT id, 'finance' FROM accounts WHERE ',' || roles || ',' LIKE '%,finance,%';
INSERT INTO account_roles (account_id, role)
    SELECT id, 'support' FROM accounts WHERE ',' || roles || ',' LIKE '%,support,%';
ALTER TABLE accounts DROP COLUMN roles;
