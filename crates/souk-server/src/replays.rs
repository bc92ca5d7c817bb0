//! Accepting a signed request once: the signatures accepted while they could still be replayed,
//! each remembered as a 16-byte digest of its access key and signature.
//!
//! Where they are remembered depends on who else could accept one:
//!
//! - **The node's memory**, when it is the only node: always on SQLite, which one node serves,
//!   and on PostgreSQL while the node is the only one present (nodes.rs in the store). The memory
//!   is written to the database every second, and read back when the node first checks a
//!   signature, so a restart still refuses what was accepted before it; after a crash, the last
//!   second's signatures may be accepted once more.
//! - **The database**, on PostgreSQL while several nodes serve it: each signature's digest is
//!   inserted by the statement that reads its key (or, for a key the node already knows, makes
//!   sure nothing changed it since: known_keys.rs), and a replay's insert finds the first,
//!   whichever node it reached. The signed requests a node receives at about the same time share
//!   that statement: a request waits for its batch, never for a timer (a batch is what arrived
//!   while the previous one ran), so under load one round trip serves several requests.
//!
//! A node alone takes the keeper lock once its own statements have ended; when another node
//! joins, it writes what it remembered to the database and gives the lock back, and the joining
//! node serves only then. Each request holds the keeper it started with until its verdict, so a
//! change of keeper waits for the requests under way and none straddles it.
//!
//! A node finds out that its own connection was cut (and its locks freed with it) only at its
//! next look, so a joined node decides only under a lease from the start of its last look, and
//! every wait before deciding (joining, taking the keeper lock) is at least a lease long: a node
//! cut off unnoticed has stopped deciding before another could start.

use crate::known_keys::KnownKeys;
use chrono::{DateTime, Utc};
use souk_store::accounts::{KeyHolder, KeyRead, SignedLookup};
use souk_store::nodes::NodeLink;
use souk_store::{Backend, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, OnceCell, OwnedRwLockReadGuard, RwLock};

/// How often a node's accepted signatures are written, and expired ones forgotten.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// How often a node looks at the nodes present (PostgreSQL), and so how long a joining node
/// waits, at most, before the one keeping signatures alone starts handing them over.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// How long a joined node goes on deciding after a look began that found its connection there
/// (and so its presence and any keeper lock it holds). A node joins only this long after the
/// keeper lock was free, and keeps signatures alone only this long after it counted the nodes,
/// so a node whose connection was cut has stopped before another starts.
const LEASE: Duration = Duration::from_secs(1);

/// How long a statement on the node's own connection may take before the connection counts as
/// lost.
const LOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one try at joining again waits (for a node keeping signatures alone to hand them
/// over) before the next.
const JOIN_AGAIN_WAIT: Duration = Duration::from_secs(10);

/// How long a request waits for signatures to be handed over before it is answered 503: a
/// handover between nodes, or this node joining again.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// How often a request waiting for a handover tries again.
const HANDOVER_POLL: Duration = Duration::from_millis(10);

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

/// The signatures a node accepted, while it alone decides.
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

/// Where accepted signatures are remembered now.
enum Keeper {
    /// The node's memory: the node is the only one.
    Memory(Memory),
    /// The database, shared by the nodes (PostgreSQL).
    Shared,
    /// Nowhere, for now: the node lost its own connection, or left (PostgreSQL). Signed
    /// requests wait; what it kept alone before, if anything, is written when it joins again.
    Waiting(Option<Memory>),
}

impl Keeper {
    /// The signatures the node keeps, or kept alone and has yet to write.
    fn memory(&self) -> Option<&Memory> {
        match self {
            Keeper::Memory(memory) | Keeper::Waiting(Some(memory)) => Some(memory),
            Keeper::Shared | Keeper::Waiting(None) => None,
        }
    }
}

/// When a node may decide whether a signature is new.
#[derive(Debug, Clone, Copy)]
enum Lease {
    /// Whenever: SQLite's one node, or a PostgreSQL node that never joined (its statements'
    /// gate alone keeps it from deciding beside a node keeping signatures alone).
    Always,
    /// A joined node (PostgreSQL), within what its looks at the nodes prove: from `from` (a
    /// node that just took the keeper lock waits one lease, so that a node whose presence was
    /// lost unnoticed has stopped), until a lease after the start of its last look.
    Within { from: Instant, until: Instant },
}

/// Why a look at the nodes failed: the node's own connection, or the store's.
enum Failed {
    Link(souk_store::Error),
    Store(souk_store::Error),
}

/// Joins the nodes, as a new node: once no node keeps signatures alone, and once the lease of
/// one that did and lost its connection has run out. Returns the node's link and its first
/// lease.
async fn joined(store: &Store) -> souk_store::Result<(NodeLink, Lease)> {
    let mut link = store.join_nodes(true).await?;
    tokio::time::sleep(LEASE).await;
    let began = Instant::now();
    tokio::time::timeout(LOOK_TIMEOUT, link.look())
        .await
        .map_err(|_| look_timed_out())??;
    Ok((
        link,
        Lease::Within {
            from: began,
            until: began + LEASE,
        },
    ))
}

/// The keeper a request started with, held until its verdict, and until when the request may
/// wait for signatures to be handed over (one deadline for all its waits).
pub struct KeeperHeld(OwnedRwLockReadGuard<Keeper>, Instant);

/// Whether a signed request's signature was seen before, as far as its key's read could tell.
pub enum Seen {
    /// The read remembered it (PostgreSQL, several nodes): `true` when it was new.
    Decided(bool),
    /// Its batch's statement is remembering it (PostgreSQL, several nodes, a key the node
    /// knew): a read may be checked and run meanwhile, but not answered before.
    Pending(oneshot::Receiver<Answer>, KeeperHeld),
    /// The keeper decides, once the signature checks out.
    Undecided(KeeperHeld),
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Decided(fresh) => write!(f, "Decided({fresh})"),
            Seen::Pending(..) => f.write_str("Pending"),
            Seen::Undecided(_) => f.write_str("Undecided"),
        }
    }
}

impl Seen {
    /// Whether the verdict is still on its way from the database.
    pub fn is_pending(&self) -> bool {
        matches!(self, Seen::Pending(..))
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
    backend: Backend,
    /// Taken shared by each request from its key's read to its verdict, exclusively to change it.
    keeper: Arc<RwLock<Keeper>>,
    /// When the node may decide whether a signature is new (renewed by each look at the nodes).
    lease: Mutex<Lease>,
    /// The node's batch reader, started on first use and again should it ever stop
    /// (PostgreSQL, several nodes).
    batches: Mutex<Option<mpsc::UnboundedSender<Waiting>>>,
    /// The node's own connection, once it joined the nodes serving the database (PostgreSQL).
    link: tokio::sync::Mutex<Link>,
    known: Arc<KnownKeys>,
}

/// The node's place among the nodes serving the database.
enum Link {
    /// Not joined (SQLite; or a PostgreSQL node that shares signatures whatever the others do).
    Apart,
    Joined(NodeLink),
    /// Joined, but its connection failed: joined again at the next look.
    Lost,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A statement on the node's own connection that did not answer in time.
fn look_timed_out() -> souk_store::Error {
    souk_store::Error::database("the node's own connection did not answer in time".to_owned())
}

impl Replays {
    /// The node's memory on SQLite; on PostgreSQL the database, until the node has joined the
    /// nodes ([`Replays::join`]) and finds itself alone.
    pub fn for_backend(backend: Backend) -> Replays {
        Replays {
            backend,
            keeper: Arc::new(RwLock::new(match backend {
                Backend::Sqlite => Keeper::Memory(Memory::default()),
                Backend::Postgres => Keeper::Shared,
            })),
            lease: Mutex::new(Lease::Always),
            batches: Mutex::new(None),
            link: tokio::sync::Mutex::new(Link::Apart),
            known: Arc::default(),
        }
    }

    /// Joins the nodes serving the database (PostgreSQL; nothing to do on SQLite), waiting
    /// until none keeps signatures alone. From then on [`Replays::watch_nodes`] lets this node
    /// keep them itself whenever it is the only one.
    pub async fn join(&self, store: &Store) -> souk_store::Result<()> {
        if self.backend == Backend::Postgres {
            let (link, lease) = joined(store).await?;
            *locked(&self.lease) = lease;
            *self.link.lock().await = Link::Joined(link);
        }
        Ok(())
    }

    /// Leaves the nodes (a node stopping): what it kept alone is written to the database, and it
    /// accepts no more signed requests.
    pub async fn leave(&self, store: &Store) -> souk_store::Result<()> {
        let link = std::mem::replace(&mut *self.link.lock().await, Link::Apart);
        let mut keeper = self.keeper.write().await;
        if let Some(memory) = keeper.memory() {
            memory.persist(store, chrono::Utc::now()).await?;
        }
        // Nothing accepted from here on would be written.
        *keeper = Keeper::Waiting(None);
        drop(keeper);
        match link {
            Link::Joined(link) => link.leave().await,
            Link::Apart | Link::Lost => Ok(()),
        }
    }

    /// Looks at the nodes present, once joined (PostgreSQL): the only one, the node takes the
    /// keeper lock and keeps signatures in its memory; once another is present, it writes them
    /// to the database and gives the lock back. Also learns the access generation. A node
    /// whose own connection fails stops accepting signed requests until it has joined again.
    pub async fn watch_nodes(&self, store: &Store) -> souk_store::Result<()> {
        let mut held = self.link.lock().await;
        let outcome = match &mut *held {
            Link::Apart => return Ok(()),
            // Bounded, so that a node stopping meanwhile can leave.
            Link::Lost => {
                return tokio::time::timeout(JOIN_AGAIN_WAIT, self.join_again(store, &mut held))
                    .await
                    .map_err(|_| look_timed_out())?
            }
            Link::Joined(link) => self.look(store, link).await,
        };
        if let Err(Failed::Link(_)) = &outcome {
            // The connection, and the keeper lock with it, may be gone, or going: the node
            // accepts nothing until it has joined again, as a new node would. What it kept
            // alone is written now if the store can (before a node starting meanwhile could
            // read it), and again before the node joins.
            let mut keeper = self.keeper.write().await;
            let kept = match std::mem::replace(&mut *keeper, Keeper::Waiting(None)) {
                Keeper::Memory(memory) | Keeper::Waiting(Some(memory)) => Some(memory),
                Keeper::Shared | Keeper::Waiting(None) => None,
            };
            if let Some(memory) = &kept {
                let written =
                    tokio::time::timeout(LOOK_TIMEOUT, memory.persist(store, chrono::Utc::now()))
                        .await;
                if !matches!(written, Ok(Ok(()))) {
                    tracing::warn!("signatures kept alone are written once the node joins again");
                }
            }
            *keeper = Keeper::Waiting(kept);
            *held = Link::Lost;
        }
        outcome.map_err(|(Failed::Link(e) | Failed::Store(e))| e)
    }

    /// One look at the nodes present, and what follows from it.
    async fn look(&self, store: &Store, link: &mut NodeLink) -> Result<(), Failed> {
        let began = Instant::now();
        let look = tokio::time::timeout(LOOK_TIMEOUT, link.look())
            .await
            .map_err(|_| Failed::Link(look_timed_out()))?
            .map_err(Failed::Link)?;
        self.known.learn(look.access_generation);
        let alone = look.present == 1;
        self.renew_lease(began);
        if link.keeping() && !alone {
            tracing::info!(
                nodes = look.present,
                "another node joined: handing accepted signatures over"
            );
            let mut keeper = self.keeper.write().await;
            if let Some(memory) = keeper.memory() {
                // Kept alone still if the write fails: the joining node waits, and the next
                // look tries again.
                memory
                    .persist(store, chrono::Utc::now())
                    .await
                    .map_err(Failed::Store)?;
            }
            *keeper = Keeper::Shared;
            tokio::time::timeout(LOOK_TIMEOUT, link.stop_keeping())
                .await
                .map_err(|_| Failed::Link(look_timed_out()))?
                .map_err(Failed::Link)?;
        } else if !link.keeping() && alone {
            // The node's own statements end before the lock is tried (they hold it shared).
            let mut keeper = self.keeper.write().await;
            let began = Instant::now();
            let kept = tokio::time::timeout(LOOK_TIMEOUT, link.keep_alone())
                .await
                .map_err(|_| Failed::Link(look_timed_out()))?
                .map_err(Failed::Link)?;
            if kept {
                tracing::info!("the only node: keeping accepted signatures in memory");
                // A node whose presence was lost just before the recount, unnoticed, decides
                // until at most a lease after its last look: this one starts after that.
                *locked(&self.lease) = Lease::Within {
                    from: Instant::now() + LEASE,
                    until: began + LEASE,
                };
                *keeper = Keeper::Memory(Memory::default());
            }
        }
        Ok(())
    }

    /// Joins again after the node's own connection failed: what it kept alone is written
    /// first, and it waits as a new node does.
    async fn join_again(&self, store: &Store, held: &mut Link) -> souk_store::Result<()> {
        let (link, lease) = joined(store).await?;
        let mut keeper = self.keeper.write().await;
        if let Some(memory) = keeper.memory() {
            // Not joined until it is written (the new connection closes, and the next look
            // tries again).
            memory.persist(store, chrono::Utc::now()).await?;
        }
        *keeper = Keeper::Shared;
        *locked(&self.lease) = lease;
        *held = Link::Joined(link);
        tracing::info!("joined the nodes again");
        Ok(())
    }

    /// The keeper, once a change of keeper under way is done, waiting until `deadline` at most.
    async fn hold_keeper(&self, deadline: Instant) -> souk_store::Result<KeeperHeld> {
        tokio::time::timeout_at(deadline.into(), self.keeper.clone().read_owned())
            .await
            .map(|held| KeeperHeld(held, deadline))
            .map_err(|_| souk_store::Error::KeptElsewhere)
    }

    /// Extends the node's lease to a lease after `began`, the start of a look that found its
    /// connection, and so its presence and any keeper lock it holds, still there.
    fn renew_lease(&self, began: Instant) {
        if let Lease::Within { until, .. } = &mut *locked(&self.lease) {
            *until = (*until).max(began + LEASE);
        }
    }

    /// Whether the node may decide now whether a signature is new: in its memory, until its
    /// lease ends; through the database, until half a lease before, leaving the other half for
    /// the statement to reach it.
    fn lease_holds(&self, in_memory: bool) -> bool {
        match *locked(&self.lease) {
            Lease::Always => true,
            Lease::Within { from, until } => {
                let now = Instant::now();
                let until = if in_memory { until } else { until - LEASE / 2 };
                from <= now && now < until
            }
        }
    }

    /// Whether this node keeps accepted signatures in its memory.
    pub async fn keeps_alone(&self) -> bool {
        matches!(*self.keeper.read().await, Keeper::Memory(_))
    }

    /// The key `access_key` with its holder, as the node knows it if nothing changed since it
    /// read it. While several nodes share PostgreSQL, a statement remembers `signature` until
    /// `expires`, tells whether it is new and reads the key if the node does not know it or it
    /// changed; for a request that only reads (`reads_only`) and a key the node knows, the
    /// holder is returned at once and the statement's verdict comes to [`Replays::accept`]. In
    /// the node's memory, remembering waits for [`Replays::accept`], once the signature checks
    /// out.
    pub async fn key_holder(
        &self,
        store: &Store,
        access_key: &str,
        signature: &str,
        expires: DateTime<Utc>,
        reads_only: bool,
    ) -> souk_store::Result<Option<(KeyHolder, Seen)>> {
        let handed_over_by = Instant::now() + HANDOVER_WAIT;
        loop {
            // The keeper is let go before waiting, so a handover need not wait for this request.
            let found = {
                let keeper = self.hold_keeper(handed_over_by).await?;
                match &*keeper.0 {
                    Keeper::Memory(_) => return self.read_key(store, access_key, keeper).await,
                    Keeper::Waiting(_) => Err(souk_store::Error::KeptElsewhere),
                    Keeper::Shared if !self.lease_holds(false) => {
                        Err(souk_store::Error::KeptElsewhere)
                    }
                    Keeper::Shared => {
                        self.read_key_remembering(
                            store, access_key, signature, expires, reads_only, keeper,
                        )
                        .await
                    }
                }
            };
            match found {
                Err(souk_store::Error::KeptElsewhere) if Instant::now() < handed_over_by => {
                    tokio::time::sleep(HANDOVER_POLL).await
                }
                found => return found,
            }
        }
    }

    /// [`Replays::key_holder`] through the node's batch statement.
    async fn read_key_remembering(
        &self,
        store: &Store,
        access_key: &str,
        signature: &str,
        expires: DateTime<Utc>,
        reads_only: bool,
        keeper: KeeperHeld,
    ) -> souk_store::Result<Option<(KeyHolder, Seen)>> {
        let writer = {
            let mut writer = locked(&self.batches);
            match writer.as_ref() {
                Some(running) if !running.is_closed() => running.clone(),
                _ => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(serve_batches(store.clone(), self.known.clone(), rx));
                    *writer = Some(tx.clone());
                    tx
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
            Some(holder) if reads_only => Ok(Some((holder, Seen::Pending(answered, keeper)))),
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
    /// it checks out (a second round trip while nodes share PostgreSQL), so forged signatures
    /// write nothing. A node keeping signatures alone answers from the keys it knows; one
    /// sharing them reads the key, since another node may have changed it.
    pub async fn key_holder_only(
        &self,
        store: &Store,
        access_key: &str,
    ) -> souk_store::Result<Option<(KeyHolder, Seen)>> {
        let keeper = self.hold_keeper(Instant::now() + HANDOVER_WAIT).await?;
        self.read_key(store, access_key, keeper).await
    }

    async fn read_key(
        &self,
        store: &Store,
        access_key: &str,
        keeper: KeeperHeld,
    ) -> souk_store::Result<Option<(KeyHolder, Seen)>> {
        if matches!(*keeper.0, Keeper::Memory(_)) {
            if let Some(holder) = self.known.get(store, access_key) {
                return Ok(Some((holder, Seen::Undecided(keeper))));
            }
        }
        let changes = store.access_changes();
        let holder = store.key_holder(access_key).await?;
        if let Some(holder) = &holder {
            self.known.remember(holder, changes);
        }
        Ok(holder.map(|h| (h, Seen::Undecided(keeper))))
    }

    /// Notes that the key's last use was recorded at `at`.
    pub fn key_used(&self, access_key: &str, at: DateTime<Utc>) {
        self.known.used(access_key, at);
    }

    /// Reads the database's access generation, so keys changed by another process (the command
    /// line, beside a node keeping signatures alone) are read again.
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
        let d = digest(access_key, signature);
        let fresh = match seen {
            Seen::Decided(fresh) => fresh,
            Seen::Pending(answered, keeper) => {
                match answered.await.map_err(|_| batch_reader_stopped())? {
                    Ok((KeyRead::Unchanged, fresh)) => fresh,
                    // Gone: its signature was not remembered, and it signs nothing.
                    Ok((KeyRead::Read(None), _)) => return Ok(Accepted::Changed(None)),
                    Ok((KeyRead::Read(Some(holder)), true)) => {
                        return Ok(Accepted::Changed(Some(holder)))
                    }
                    Ok((KeyRead::Read(Some(_)), false)) => false,
                    Err(souk_store::Error::KeptElsewhere) => {
                        // Another node kept signatures alone: the statement decided nothing,
                        // not even whether the key changed. Read it again, and remember the
                        // signature once the handover is done.
                        let deadline = keeper.1;
                        drop(keeper);
                        let holder = store.key_holder(access_key).await?;
                        let keeper = self.hold_keeper(deadline).await?;
                        return Ok(match holder {
                            None => Accepted::Changed(None),
                            Some(holder) => {
                                if self.remember(store, keeper, d, now, expires).await? {
                                    Accepted::Changed(Some(Box::new(holder)))
                                } else {
                                    Accepted::Replay
                                }
                            }
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            Seen::Undecided(keeper) => self.remember(store, keeper, d, now, expires).await?,
        };
        Ok(if fresh {
            Accepted::New
        } else {
            Accepted::Replay
        })
    }

    /// Remembers a checked signature with the keeper the request holds: `true` when it is new.
    /// While another node keeps signatures alone, waits for it to hand them over.
    async fn remember(
        &self,
        store: &Store,
        mut keeper: KeeperHeld,
        d: Digest,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> souk_store::Result<bool> {
        let handed_over_by = keeper.1;
        loop {
            let remembered = match &*keeper.0 {
                // Read back before the lease is looked at, which decides (a long read may
                // outlast it).
                Keeper::Memory(memory) if self.lease_holds(true) => {
                    match tokio::time::timeout_at(handed_over_by.into(), memory.load(store, now))
                        .await
                    {
                        Ok(Ok(())) if self.lease_holds(true) => Ok(memory.accept(d, expires)),
                        Ok(Ok(())) => Err(souk_store::Error::KeptElsewhere),
                        Ok(Err(e)) => Err(e),
                        Err(_) => return Err(souk_store::Error::KeptElsewhere),
                    }
                }
                Keeper::Shared if self.lease_holds(false) => {
                    store.remember_signature_digest(&d, expires).await
                }
                // Until the next look renews the lease, or finds the connection lost.
                Keeper::Memory(_) | Keeper::Shared | Keeper::Waiting(_) => {
                    Err(souk_store::Error::KeptElsewhere)
                }
            };
            match remembered {
                Err(souk_store::Error::KeptElsewhere) if Instant::now() < handed_over_by => {
                    drop(keeper);
                    tokio::time::sleep(HANDOVER_POLL).await;
                    keeper = self.hold_keeper(handed_over_by).await?;
                }
                remembered => return remembered,
            }
        }
    }

    /// Writes what the node kept in its memory since the last call, and forgets what has
    /// expired.
    pub async fn persist(&self, store: &Store, now: DateTime<Utc>) -> souk_store::Result<()> {
        if let Some(memory) = self.keeper.read().await.memory() {
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
    /// Reads back what was remembered before, once.
    async fn load(&self, store: &Store, now: DateTime<Utc>) -> souk_store::Result<()> {
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
        Ok(())
    }

    /// Whether a signature is new, remembering it: once loaded.
    fn accept(&self, d: Digest, expires: DateTime<Utc>) -> bool {
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
        fresh
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
            let kept_elsewhere = matches!(e, souk_store::Error::KeptElsewhere);
            let why = e.to_string();
            for w in batch {
                let _ = w.answer.send(Err(if kept_elsewhere {
                    souk_store::Error::KeptElsewhere
                } else {
                    souk_store::Error::database(why.clone())
                }));
            }
        }
    }
}

/// Forever: looks at the nodes present four times a second (a task of its own, so that a slow
/// write of signatures never lets the node's lease run out).
pub async fn watch(state: crate::SharedState) {
    // On a fixed beat, whatever a look takes, so a slow look delays the next one the least.
    let mut beat = tokio::time::interval(WATCH_EVERY);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        if let Err(e) = state.replays.watch_nodes(&state.store).await {
            tracing::warn!(error = %e, "could not look at the nodes present");
        }
    }
}

/// Forever, every second: reads the access generation, and persists and prunes accepted
/// signatures.
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
        let replays = Replays::for_backend(Backend::Postgres);
        *locked(&replays.batches) = Some(stopped);
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
        assert!(!locked(&replays.batches).as_ref().unwrap().is_closed());
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_keeping_signatures_alone_accepts_none_past_its_lease() {
        if !postgres_enabled() {
            return;
        }
        let db = TestDb::new(Backend::Postgres).await;
        let replays = Replays::for_backend(Backend::Postgres);
        *replays.keeper.write().await = Keeper::Memory(Memory::default());
        let joined = Instant::now();
        *locked(&replays.lease) = Lease::Within {
            from: joined,
            until: joined,
        };
        let (now, until) = (Utc::now(), Utc::now() + chrono::Duration::minutes(15));
        let remember = |d: u8| {
            let keeper = KeeperHeld(
                replays.keeper.clone().try_read_owned().unwrap(),
                Instant::now() + HANDOVER_WAIT,
            );
            replays.remember(&db.store, keeper, [d; 16], now, until)
        };
        // Run out: the node waits for its next look instead of accepting.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(300), remember(1)).await;
        assert!(waited.is_err(), "accepted past the lease: {waited:?}");
        // Renewed by a look that found the node holding the keeper lock.
        replays.renew_lease(Instant::now());
        assert!(remember(1).await.unwrap());
        assert!(!remember(1).await.unwrap(), "a replay");
        // Just taken, the keeper lock lets the node decide only a lease later, and the database
        // is not asked meanwhile either.
        let taken = Instant::now();
        *locked(&replays.lease) = Lease::Within {
            from: taken + LEASE,
            until: taken + LEASE,
        };
        let early = tokio::time::timeout(std::time::Duration::from_millis(300), remember(2)).await;
        assert!(early.is_err(), "decided before the lease began: {early:?}");
        *replays.keeper.write().await = Keeper::Shared;
        let shared = tokio::time::timeout(std::time::Duration::from_millis(300), remember(2)).await;
        assert!(
            shared.is_err(),
            "remembered in the database before the lease began: {shared:?}"
        );
        db.cleanup().await;
    }
}
