-- What a signed request's key may do is read from its key, its user and its account; nodes keep
-- what they read and trust it while this count stands. Every change to those rows that could
-- change the answer adds one, in the transaction that makes it (at its commit, so the count's
-- row is held only for the commit's last moment and two such transactions cannot deadlock on
-- it). A node reads the count in the statement that remembers a batch's signatures, so a
-- disabled key, a deleted user or a narrower policy is refused by every node from the first
-- statement that follows the change.
CREATE TABLE access_generation (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO access_generation (id, n) VALUES (1, 0);

CREATE FUNCTION access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_generation SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER access_keys_changed AFTER UPDATE OF state, secret_enc, user_id, account_id OR DELETE
    ON access_keys DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE CONSTRAINT TRIGGER iam_users_changed AFTER UPDATE OF policy, programmatic_access, account_id OR DELETE
    ON iam_users DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE CONSTRAINT TRIGGER accounts_changed AFTER UPDATE OR DELETE
    ON accounts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_changed();
CREATE CONSTRAINT TRIGGER account_roles_changed AFTER INSERT OR UPDATE OR DELETE
    ON account_roles DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_changed();
