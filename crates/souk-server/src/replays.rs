//! Accepting a signed request once: the signatures accepted while they could still be replayed,
//! each remembered as a 16-byte digest of its access key and signature.
//!
//! On PostgreSQL several nodes may serve one marketplace, so the database decides: each signature's
//! digest is inserted by the statement that reads its key (or, for a key the node already knows,
//! makes sure nothing changed it since: known_keys.rs), and a replay's insert finds the first,
//! whichever node it reached. The signed requests a node receives at about the same time share
//! that statement: a request waits for its batch, never for a timer (a batch is what arrived
//! while the previous one ran), so under load one round trip serves several requests.
//!
//! SQLite serves one node, so that node's memory decides, and a signed request does not wait for
//! the single writer behind every other write. The memory is written to the database every second,
//! one row for the second's signatures, and read back when the node first checks a signature, so a
//! restart still refuses what was accepted before it; after a crash, the last second's signatures
//! may be accepted once more.

use crate::known_keys::KnownKeys;
use chrono::{DateTime, Utc};
use souk_store::accounts::{KeyHolder, KeyRead, SignedLookup};
use souk_store::{Backend, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, OnceCell};

/// How often a node's accepted signatures are written (SQLite), and expired ones forgotten.
const PERSIST_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The most signed requests one statement serves (PostgreSQL).
const MAX_BATCH: usize = 64;

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

/// A signed request waiting for its batch's statement, and where its answer goes.
struct Waiting {
    access_key: String,
    /// The access generation at which the node knows its key's holder, if it does.
    known_at: Option<i64>,
    digest: Digest,
    expires: DateTime<Utc>,
    answer: oneshot::Sender<Answer>,
}

/// What a batch's statement answers one signed request: its key's holder (unless the node's
/// stands) and whether its signature was new.
type Answer = souk_store::Result<(KeyRead, bool)>;

/// Whether a signed request's signature was seen before, as far as its key's read could tell.
#[derive(Debug)]
pub enum Seen {
    /// The read remembered it (PostgreSQL): `true` when it was new.
    Decided(bool),
    /// Its batch's statement is remembering it (PostgreSQL, a key the node knew): a read may be
    /// checked and run meanwhile, but not answered before.
    Pending(oneshot::Receiver<Answer>),
    /// The node's memory decides, once the signature checks out (SQLite).
    Undecided,
}

impl Seen {
    /// Whether the verdict is still on its way from the database.
    pub fn is_pending(&self) -> bool {
        matches!(self, Seen::Pending(_))
    }
}

/// Whether a checked signed request may be answered.
#[derive(Debug)]
pub enum Accepted {
    /// Its signature is new.
    New,
    /// Its signature was accepted before: a replay.
    Replay,
    /// Its signature is new, but its key changed while it was checked against what the node
    /// knew (the key as it is now, or none if it is gone): it must be checked again.
    Changed(Option<Box<KeyHolder>>),
}

/// Where accepted signatures are remembered, and the keys the node knows.
pub struct Replays {
    keeper: Keeper,
    known: Arc<KnownKeys>,
}

enum Keeper {
    /// The node's memory (SQLite).
    Memory(Memory),
    /// The database, through the node's batch reader, started on first use and again should
    /// it ever stop (PostgreSQL).
    Shared(Mutex<Option<mpsc::UnboundedSender<Waiting>>>),
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Replays {
    /// The node's memory on SQLite, the database on PostgreSQL.
    pub fn for_backend(backend: Backend) -> Replays {
        Replays {
            keeper: match backend {
                Backend::Sqlite => Keeper::Memory(Memory::default()),
                Backend::Postgres => Keeper::Shared(Mutex::new(None)),
            },
            known: Arc::default(),
        }
    }

    /// The key `access_key` with its holder, as the node knows it if nothing changed since it
    /// read it. On PostgreSQL a statement remembers `signature` until `expires`, tells whether
    /// it is new and reads the key if the node does not know it or it changed; for a request
    /// that only reads (`reads_only`) and a key the node knows, the holder is returned at once
    /// and the statement's verdict comes to [`Replays::accept`]. On SQLite remembering waits for
    /// [`Replays::accept`], once the signature checks out.
    pub async fn key_holder(
        &self,
        store: &Store,
        access_key: &str,
        signature: &str,
        expires: DateTime<Utc>,
        reads_only: bool,
    ) -> souk_store::Result<Option<(KeyHolder, Seen)>> {
        let writer = match &self.keeper {
            Keeper::Memory(_) => return self.key_holder_only(store, access_key).await,
            Keeper::Shared(writer) => {
                let mut writer = locked(writer);
                match writer.as_ref() {
                    Some(running) if !running.is_closed() => running.clone(),
                    _ => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        tokio::spawn(serve_batches(store.clone(), self.known.clone(), rx));
                        *writer = Some(tx.clone());
                        tx
                    }
                }
            }
        };
        let (answer, answered) = oneshot::channel();
        let known = self.known.get(store, access_key);
        let waiting = Waiting {
            access_key: access_key.to_owned(),
            known_at: known.as_ref().map(|h| h.generation),
            digest: digest(access_key, signature),
            expires,
            answer,
        };
        writer.send(waiting).map_err(|_| batch_reader_stopped())?;
        match known {
            Some(holder) if reads_only => Ok(Some((holder, Seen::Pending(answered)))),
            known => {
                let (read, fresh) = answered.await.map_err(|_| batch_reader_stopped())??;
                let holder = match read {
                    KeyRead::Unchanged => known,
                    KeyRead::Read(holder) => holder.map(|h| *h),
                };
                Ok(holder.map(|h| (h, Seen::Decided(fresh))))
            }
        }
    }

    /// The key `access_key` with its holder, remembering no signature: for a client that sent
    /// too many bad signatures, whose signature is remembered by [`Replays::accept`] only once
    /// it checks out (a second round trip on PostgreSQL), so forged signatures write nothing.
    /// On SQLite, where signatures are remembered that way anyway, the node's known keys serve
    /// it; on PostgreSQL the key is read, since another node may have changed it.
    pub async fn key_holder_only(
        &self,
        store: &Store,
        access_key: &str,
    ) -> souk_store::Result<Option<(KeyHolder, Seen)>> {
        if matches!(self.keeper, Keeper::Memory(_)) {
            if let Some(holder) = self.known.get(store, access_key) {
                return Ok(Some((holder, Seen::Undecided)));
            }
        }
        let changes = store.access_changes();
        let holder = store.key_holder(access_key).await?;
        if let Some(holder) = &holder {
            self.known.remember(holder, changes);
        }
        Ok(holder.map(|h| (h, Seen::Undecided)))
    }

    /// Notes that the key's last use was recorded at `at`.
    pub fn key_used(&self, access_key: &str, at: DateTime<Utc>) {
        self.known.used(access_key, at);
    }

    /// Reads the database's access generation, so keys changed by another process (on SQLite,
    /// the command line) are read again.
    pub async fn refresh_known_keys(&self, store: &Store) -> souk_store::Result<()> {
        self.known.learn(store.access_generation().await?);
        Ok(())
    }

    /// Whether the checked signature is new, remembering it until `expires` when the key's
    /// read did not, and (for a request checked against the key as the node knew it) whether
    /// the key changed meanwhile.
    pub async fn accept(
        &self,
        store: &Store,
        seen: Seen,
        access_key: &str,
        signature: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> souk_store::Result<Accepted> {
        let fresh = match (seen, &self.keeper) {
            (Seen::Decided(fresh), _) => fresh,
            (Seen::Pending(answered), _) => {
                match answered.await.map_err(|_| batch_reader_stopped())?? {
                    (KeyRead::Unchanged, fresh) => fresh,
                    // Gone: its signature was not remembered, and it signs nothing.
                    (KeyRead::Read(None), _) => return Ok(Accepted::Changed(None)),
                    (KeyRead::Read(Some(holder)), true) => {
                        return Ok(Accepted::Changed(Some(holder)))
                    }
                    (KeyRead::Read(Some(_)), false) => false,
                }
            }
            (Seen::Undecided, Keeper::Memory(memory)) => {
                memory
                    .accept(store, digest(access_key, signature), now, expires)
                    .await?
            }
            (Seen::Undecided, Keeper::Shared(_)) => {
                store
                    .remember_signature_digest(&digest(access_key, signature), expires)
                    .await?
            }
        };
        Ok(if fresh {
            Accepted::New
        } else {
            Accepted::Replay
        })
    }

    /// Writes what the node accepted since the last call (SQLite), and forgets what has expired.
    pub async fn persist(&self, store: &Store, now: DateTime<Utc>) -> souk_store::Result<()> {
        if let Keeper::Memory(memory) = &self.keeper {
            memory.persist(store, now).await?;
        }
        store.forget_expired_signatures(now).await?;
        Ok(())
    }
}

fn batch_reader_stopped() -> souk_store::Error {
    souk_store::Error::database("reading a key: the batch reader stopped".to_owned())
}

impl Memory {
    async fn accept(
        &self,
        store: &Store,
        d: Digest,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> souk_store::Result<bool> {
        self.loaded
            .get_or_try_init(|| async {
                let kept = store.remembered_signatures(now).await?;
                let mut seen = locked(&self.seen);
                for (hex_digest, expires) in kept {
                    let mut d = Digest::default();
                    if hex::decode_to_slice(&hex_digest, &mut d).is_ok() {
                        seen.insert(d, expires);
                    }
                }
                Ok::<(), souk_store::Error>(())
            })
            .await?;
        let fresh = match locked(&self.seen).entry(d) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(expires);
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
        };
        if fresh {
            locked(&self.unwritten).push((d, expires));
        }
        Ok(fresh)
    }

    async fn persist(&self, store: &Store, now: DateTime<Utc>) -> souk_store::Result<()> {
        let batch = std::mem::take(&mut *locked(&self.unwritten));
        if !batch.is_empty() {
            let lines: Vec<(String, DateTime<Utc>)> = batch
                .iter()
                .map(|(d, expires)| (hex::encode(d), *expires))
                .collect();
            if let Err(e) = store.remember_signature_batch(&lines, now).await {
                // Kept for the next try; the memory still refuses them meanwhile.
                locked(&self.unwritten).extend(batch);
                return Err(e);
            }
        }
        locked(&self.seen).retain(|_, expires| *expires >= now);
        Ok(())
    }
}

/// Reads the keys of the waiting requests and remembers their signatures, as many requests as
/// arrived, one statement at a time, and answers each. (Two statements at once made the
/// batches smaller and signed requests no faster: the machine is short of CPU, not of time.)
async fn serve_batches(
    store: Store,
    known: Arc<KnownKeys>,
    mut queue: mpsc::UnboundedReceiver<Waiting>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        answer(&store, &known, batch).await;
    }
}

/// Runs one batch's statement and answers each of its requests, keeping the holders it read.
async fn answer(store: &Store, known: &KnownKeys, batch: Vec<Waiting>) {
    let lookups: Vec<SignedLookup<'_>> = batch
        .iter()
        .map(|w| SignedLookup {
            access_key: &w.access_key,
            digest: &w.digest,
            expires: w.expires,
            known_at: w.known_at,
        })
        .collect();
    let changes = store.access_changes();
    match store.key_holders_remembering(&lookups).await {
        Ok((answers, generation)) => {
            known.learn(generation);
            for (w, answer) in batch.into_iter().zip(answers) {
                if let Ok((KeyRead::Read(Some(holder)), _)) = &answer {
                    known.remember(holder, changes);
                }
                let _ = w.answer.send(answer);
            }
        }
        Err(e) => {
            let why = e.to_string();
            for w in batch {
                let _ = w.answer.send(Err(souk_store::Error::database(why.clone())));
            }
        }
    }
}

/// Every second, forever: reads the access generation, and persists and prunes accepted signatures.
pub async fn keep(state: crate::SharedState) {
    loop {
        tokio::time::sleep(PERSIST_EVERY).await;
        // First, as it is quick: writing the signatures may wait for SQLite's one writer.
        if let Err(e) = state.replays.refresh_known_keys(&state.store).await {
            tracing::warn!(error = %e, "could not read the access generation");
        }
        if let Err(e) = state.replays.persist(&state.store, Utc::now()).await {
            tracing::warn!(error = %e, "could not write accepted signatures");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use souk_store::testing::{postgres_enabled, TestDb};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_reader_that_stopped_is_started_again() {
        if !postgres_enabled() {
            return;
        }
        let db = TestDb::new(Backend::Postgres).await;
        // A reader whose task is gone (as after a panic in it): its queue has no receiver.
        let (stopped, queue) = mpsc::unbounded_channel();
        drop(queue);
        let replays = Replays {
            keeper: Keeper::Shared(Mutex::new(Some(stopped))),
            known: Arc::default(),
        };
        let until = Utc::now() + chrono::Duration::minutes(15);
        for _ in 0..2 {
            // Answered by a statement (an unknown key has no holder), not refused for want of
            // a reader; the second request reuses the reader the first one started.
            let found = replays
                .key_holder(&db.store, "AKNOSUCHKEY000000000", "00", until, false)
                .await
                .unwrap();
            assert!(found.is_none());
        }
        let Keeper::Shared(writer) = &replays.keeper else {
            unreachable!("built shared above")
        };
        assert!(!locked(writer).as_ref().unwrap().is_closed());
        db.cleanup().await;
    }
}
