-- A node on SQLite remembers accepted signatures in memory and in `signature_batches`; the table
-- of single signatures is no longer read or written.
DROP TABLE signed_requests;
