-- Where each refused signed request came from (the client's address as souk saw it, after any
-- trusted proxy), so an operator can tell one misconfigured client from a spread of them.
ALTER TABLE auth_audit ADD COLUMN client_address TEXT;
