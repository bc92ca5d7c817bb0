-- What a signed request's key may do is read from its key, its user and its account; the node
-- keeps what it read and trusts it while this count stands. Every change to those rows that
-- could change the answer adds one, in the transaction that makes it, whichever process makes it
-- (the node also counts its own changes in memory, so they apply from its next request; it reads
-- this count every second for those of other processes, such as the command line's).
CREATE TABLE access_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
INSERT INTO access_generation (id, n) VALUES (1, 0);

CREATE TRIGGER access_keys_updated AFTER UPDATE OF state, secret_enc, user_id, account_id ON access_keys
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER access_keys_deleted AFTER DELETE ON access_keys
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER iam_users_updated AFTER UPDATE OF policy, programmatic_access, account_id ON iam_users
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER iam_users_deleted AFTER DELETE ON iam_users
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER accounts_updated AFTER UPDATE ON accounts
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER accounts_deleted AFTER DELETE ON accounts
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER account_roles_inserted AFTER INSERT ON account_roles
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER account_roles_updated AFTER UPDATE ON account_roles
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER account_roles_deleted AFTER DELETE ON account_roles
BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;
