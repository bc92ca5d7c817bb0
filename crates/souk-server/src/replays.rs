//! Accepting a signed request once: the signatures accepted while they could still be replayed.
//!
//! On PostgreSQL several nodes may serve one marketplace, so the database decides: each accepted
//! signature is inserted, and a replay's insert finds the first, whichever node it reached.
//!
//! SQLite serves one node, so that node's memory decides, and a signed request does not wait for
//! the single writer behind every other write. The memory is written to the database every second,
//! one row for the second's signatures, and read back when the node first checks a signature, so a
//! restart still refuses what was accepted before it; after a crash, the last second's signatures
//! may be accepted once more.

use chrono::{DateTime, Utc};
use souk_store::accounts::KeyHolder;
use souk_store::{Backend, Store};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::OnceCell;

/// How often a node's accepted signatures are written, and expired ones forgotten.
const PERSIST_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// An accepted (access key, signature) in 16 bytes: the start of their SHA-256, so a busy node's
/// half hour of signatures stays small.
type Digest = [u8; 16];

fn digest(access_key: &str, signature: &str) -> Digest {
    use sha2::{Digest as _, Sha256};
    let full = Sha256::new()
        .chain_update(access_key.as_bytes())
        .chain_update([0])
        .chain_update(signature.as_bytes())
        .finalize();
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    d
}

/// The signatures a node accepted, when the node alone decides (SQLite).
#[derive(Default)]
struct Memory {
    /// Read back from the database on first use.
    loaded: OnceCell<()>,
    /// Each accepted signature, until when it is kept.
    seen: Mutex<HashMap<Digest, DateTime<Utc>>>,
    /// Accepted since the last write to the database.
    unwritten: Mutex<Vec<(Digest, DateTime<Utc>)>>,
}

/// Whether a signed request's signature was seen before, as far as its key's read could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The read remembered it (PostgreSQL): `true` when it was new.
    Decided(bool),
    /// The node's memory decides, once the signature checks out (SQLite).
    Undecided,
}

/// Where accepted signatures are remembered.
pub struct Replays {
    memory: Option<Memory>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Replays {
    /// The node's memory on SQLite, the database on PostgreSQL.
    pub fn for_backend(backend: Backend) -> Replays {
        Replays {
            memory: (backend == Backend::Sqlite).then(Memory::default),
        }
    }

    /// The key `access_key` with its holder. On PostgreSQL the same statement remembers
    /// `signature` until `expires` and tells whether it is new; on SQLite that waits for
    /// [`Replays::accept`], once the signature checks out.
    pub async fn key_holder(
        &self,
        store: &Store,
        access_key: &str,
        signature: &str,
        expires: DateTime<Utc>,
    ) -> souk_store::Result<Option<(KeyHolder, Seen)>> {
        let shared = self.memory.is_none().then_some((signature, expires));
        Ok(store
            .key_holder(access_key, shared)
            .await?
            .map(|(holder, fresh)| (holder, fresh.map_or(Seen::Undecided, Seen::Decided))))
    }

    /// Whether the checked signature is new (`false` for a replay), remembering it until
    /// `expires` when the key's read did not.
    pub async fn accept(
        &self,
        store: &Store,
        seen: Seen,
        access_key: &str,
        signature: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> souk_store::Result<bool> {
        let (Seen::Undecided, Some(memory)) = (seen, &self.memory) else {
            return Ok(seen == Seen::Decided(true));
        };
        memory
            .loaded
            .get_or_try_init(|| async {
                let kept = store.remembered_signatures(now).await?;
                let mut seen = locked(&memory.seen);
                for (hex_digest, expires) in kept {
                    let mut d = Digest::default();
                    if hex::decode_to_slice(&hex_digest, &mut d).is_ok() {
                        seen.insert(d, expires);
                    }
                }
                Ok::<(), souk_store::Error>(())
            })
            .await?;
        let d = digest(access_key, signature);
        let fresh = match locked(&memory.seen).entry(d) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(expires);
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
        };
        if fresh {
            locked(&memory.unwritten).push((d, expires));
        }
        Ok(fresh)
    }

    /// Writes what the node accepted since the last call, and forgets what has expired.
    pub async fn persist(&self, store: &Store, now: DateTime<Utc>) -> souk_store::Result<()> {
        if let Some(memory) = &self.memory {
            let batch = std::mem::take(&mut *locked(&memory.unwritten));
            if !batch.is_empty() {
                let lines: Vec<(String, DateTime<Utc>)> = batch
                    .iter()
                    .map(|(d, expires)| (hex::encode(d), *expires))
                    .collect();
                if let Err(e) = store.remember_signature_batch(&lines, now).await {
                    // Kept for the next try; the memory still refuses them meanwhile.
                    locked(&memory.unwritten).extend(batch);
                    return Err(e);
                }
            }
            locked(&memory.seen).retain(|_, expires| *expires >= now);
        }
        store.forget_expired_signatures(now).await?;
        Ok(())
    }
}

/// Persists and prunes accepted signatures every second, forever.
pub async fn keep(state: crate::SharedState) {
    loop {
        tokio::time::sleep(PERSIST_EVERY).await;
        if let Err(e) = state.replays.persist(&state.store, Utc::now()).await {
            tracing::warn!(error = %e, "could not write accepted signatures");
        }
    }
}
