-- Accepted signatures are kept 30 minutes to refuse replays; they need no WAL. An unlogged table
-- makes remembering one a cheap insert with no flush at commit; a crash of PostgreSQL itself
-- empties it (its restart then accepts a replay of a request from the last 30 minutes once).
ALTER TABLE signed_requests SET UNLOGGED;
