//! The souk nodes serving one PostgreSQL database, as the database itself sees them, and which
//! of them, if any, keeps accepted signatures in its memory.
//!
//! A running node holds a shared advisory lock (the *presence* lock) on a connection of its own,
//! so the database can count the nodes present without heartbeats, and forgets a node the moment
//! its process ends and its connection with it.
//!
//! A node that is alone may keep the signatures it accepts in its memory instead of writing one
//! row a request: it does so only while it holds the *keeper* lock exclusively. Every statement
//! that remembers a signature in the database takes the keeper lock shared for its transaction
//! first (the gate) and remembers nothing if it cannot, so a node keeping signatures alone and a
//! statement remembering one never overlap: the keeper lock is granted only once every such
//! statement has committed, and none runs while it is held.
//!
//! Advisory locks belong to one database, so nodes of other databases on the same server do
//! not count.

use crate::{Error, Result, Store};
use sqlx::{AnyConnection, Connection};

/// The first key of souk's advisory locks ("souk" in ASCII).
const LOCKS: i32 = 0x736f_756b;
/// Held shared by every node present.
const PRESENT: i32 = 1;
/// Held exclusively by the node keeping signatures alone; shared by a statement remembering one.
const KEEPER: i32 = 2;

/// The gate of a statement that remembers signatures: true when it took the keeper lock shared
/// (until its transaction ends), false when a node keeps signatures alone. A SQL expression.
pub(crate) fn keeper_gate() -> String {
    format!("pg_try_advisory_xact_lock_shared({LOCKS}, {KEEPER})")
}

/// A node's own connection to the database, holding its presence for as long as it is open.
pub struct NodeLink {
    conn: AnyConnection,
    /// Whether this node holds the keeper lock.
    keeping: bool,
}

/// What a node sees of the others at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// The nodes present, this one included.
    pub present: i64,
    /// The database's access generation.
    pub access_generation: i64,
}

impl Store {
    /// Joins the nodes serving this database (PostgreSQL): opens the node's own connection and
    /// takes its presence. With `wait_for_keeper`, then waits until no node keeps signatures
    /// alone: the one that does sees this node present and hands them over, and only then may
    /// this node serve (what it changes, another node must not overlook).
    pub async fn join_nodes(&self, wait_for_keeper: bool) -> Result<NodeLink> {
        let mut conn = self.pool.connect_alone().await?;
        // Should the node's host vanish without closing the connection, the server lets its
        // locks go after about 11 seconds of silence, not after the system's two hours.
        sqlx::query(
            "SELECT set_config('tcp_keepalives_idle', '5', false), \
                    set_config('tcp_keepalives_interval', '2', false), \
                    set_config('tcp_keepalives_count', '3', false)",
        )
        .execute(&mut conn)
        .await?;
        sqlx::query(&format!(
            "SELECT pg_advisory_lock_shared({LOCKS}, {PRESENT})"
        ))
        .execute(&mut conn)
        .await?;
        if wait_for_keeper {
            sqlx::query(&format!(
                "SELECT pg_advisory_lock_shared({LOCKS}, {KEEPER}), pg_advisory_unlock_shared({LOCKS}, {KEEPER})"
            ))
            .execute(&mut conn)
            .await?;
        }
        Ok(NodeLink {
            conn,
            keeping: false,
        })
    }
}

impl NodeLink {
    /// How many nodes are present, and the access generation, in one round trip.
    pub async fn look(&mut self) -> Result<Look> {
        let (present, access_generation): (i64, i64) = sqlx::query_as(&format!(
            "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     AND classid = {LOCKS} AND objid = {PRESENT} AND objsubid = 2), \
                    (SELECT n FROM access_generation WHERE id = 1)"
        ))
        .fetch_one(&mut self.conn)
        .await?;
        Ok(Look {
            present,
            access_generation,
        })
    }

    /// Takes the keeper lock if no statement is remembering a signature and this node is the
    /// only one present; true when it did. The caller must have stopped its own node's
    /// statements first: this does not wait for them.
    pub async fn keep_alone(&mut self) -> Result<bool> {
        if self.keeping {
            return Ok(true);
        }
        let taken: bool =
            sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({LOCKS}, {KEEPER})"))
                .fetch_one(&mut self.conn)
                .await?;
        if !taken {
            return Ok(false);
        }
        self.keeping = true;
        // A node that joined between the caller's look and the lock must not be overlooked.
        if self.look().await?.present > 1 {
            self.stop_keeping().await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Gives the keeper lock back, once what the node kept is written to the database.
    pub async fn stop_keeping(&mut self) -> Result<()> {
        if self.keeping {
            let released: bool =
                sqlx::query_scalar(&format!("SELECT pg_advisory_unlock({LOCKS}, {KEEPER})"))
                    .fetch_one(&mut self.conn)
                    .await?;
            if !released {
                return Err(Error::Corrupt(
                    "the keeper lock was not held by the node that took it".into(),
                ));
            }
            self.keeping = false;
        }
        Ok(())
    }

    /// Whether this node holds the keeper lock.
    pub fn keeping(&self) -> bool {
        self.keeping
    }

    /// Leaves: the presence and the keeper lock go with the connection.
    pub async fn leave(self) -> Result<()> {
        self.conn.close().await?;
        Ok(())
    }
}
