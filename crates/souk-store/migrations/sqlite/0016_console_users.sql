-- IAM users with console access sign in to the web console with their own password; a session
-- started so names its IAM user, whose policy then bounds what the session may do.
ALTER TABLE iam_users ADD COLUMN password_hash TEXT;
ALTER TABLE sessions ADD COLUMN iam_user_id TEXT;
