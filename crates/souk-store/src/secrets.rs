//! Every column that holds a secret sealed by the server, for re-sealing them in a new format.

use crate::{Result, Store};

/// The columns holding sealed secrets: (table, column).
pub const SEALED_COLUMNS: [(&str, &str); 2] =
    [("products", "signing_key_enc"), ("instances", "access_enc")];

/// One sealed value and the row it belongs to.
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub table: &'static str,
    pub column: &'static str,
    pub id: String,
    pub value: String,
}

impl Store {
    /// Sealed values whose text starts with `prefix` (e.g. an old format's `v1:`).
    pub async fn sealed_values(&self, prefix: &str) -> Result<Vec<SealedValue>> {
        let mut out = Vec::new();
        for (table, column) in SEALED_COLUMNS {
            let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT id, {column} FROM {table} WHERE {column} LIKE $1"
            ))
            .bind(format!("{prefix}%"))
            .fetch_all(&self.pool)
            .await?;
            out.extend(rows.into_iter().map(|(id, value)| SealedValue {
                table,
                column,
                id,
                value,
            }));
        }
        Ok(out)
    }

    /// Replaces a sealed value if it is still the one read; returns whether it was.
    pub async fn replace_sealed(&self, old: &SealedValue, new_value: &str) -> Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE {} SET {} = $1 WHERE id = $2 AND {} = $3",
            old.table, old.column, old.column
        ))
        .bind(new_value)
        .bind(&old.id)
        .bind(&old.value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
