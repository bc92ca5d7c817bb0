//! The access keys a node has read, each with its user and account, so that a signed request
//! need not read its key again while nothing that decides what the key may do has changed.
//!
//! Two counts say when something has. The store counts the changes its own process commits
//! ([`Store::access_changes`]), and the database counts every process's and every node's (its
//! access generation, moved by triggers in the transactions that make the changes). A holder is
//! trusted while both stand where they stood when it was read:
//!
//! - a change made through this node applies from its next request;
//! - on PostgreSQL every batch statement reads the generation beside the signatures it
//!   remembers and reads again the keys of its batch if it moved (replays.rs), so a change made
//!   on another node applies from the next statement, as when every request read its key;
//! - on SQLite, which one node serves, another process changes the database only through the
//!   command line (a new operator's roles, a new key); the node reads the generation every
//!   second for those.
//!
//! Only keys that exist are kept, and no more than the marketplace holds, so unknown keys sent
//! by anyone cannot grow it.

use chrono::{DateTime, Utc};
use souk_store::accounts::KeyHolder;
use souk_store::Store;
use std::collections::HashMap;
use std::sync::Mutex;

/// The holders a node read, and the newest access generation it has seen.
#[derive(Default)]
pub struct KnownKeys(Mutex<Known>);

#[derive(Default)]
struct Known {
    /// The newest access generation the node has seen; a holder read at an older one is stale.
    generation: i64,
    by_key: HashMap<String, Entry>,
}

struct Entry {
    holder: KeyHolder,
    /// The store's count of its own changes before the holder was read.
    changes: u64,
}

impl KnownKeys {
    /// The holder of `access_key` as last read, if nothing has changed since.
    pub fn get(&self, store: &Store, access_key: &str) -> Option<KeyHolder> {
        let changes = store.access_changes();
        let mut known = self.lock();
        let generation = known.generation;
        match known.by_key.get(access_key) {
            Some(e) if e.changes == changes && e.holder.generation == generation => {
                Some(e.holder.clone())
            }
            Some(_) => {
                known.by_key.remove(access_key);
                None
            }
            None => None,
        }
    }

    /// Keeps a holder read after the store's count of its own changes stood at `changes`.
    pub fn remember(&self, holder: &KeyHolder, changes: u64) {
        let mut known = self.lock();
        known.learn(holder.generation);
        if holder.generation == known.generation {
            known.by_key.insert(
                holder.key.access_key.clone(),
                Entry {
                    holder: holder.clone(),
                    changes,
                },
            );
        }
    }

    /// Takes note of the database's access generation: if it moved, every holder read before
    /// is forgotten.
    pub fn learn(&self, generation: i64) {
        self.lock().learn(generation);
    }

    /// Notes that a key's last use was recorded at `at` (it is not recorded again for a minute).
    pub fn used(&self, access_key: &str, at: DateTime<Utc>) {
        if let Some(e) = self.lock().by_key.get_mut(access_key) {
            e.holder.key.last_used_at = Some(at);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Known {
    fn learn(&mut self, generation: i64) {
        if generation > self.generation {
            self.generation = generation;
            self.by_key.clear();
        }
    }
}
