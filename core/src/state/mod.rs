//! Local state: key-value stores that live inside a task, in memory or in RocksDB, made fault-tolerant by a
//! compacted changelog topic.
//!
//! A backend ([`memory`], [`rocksdb`]) only has to read, and to apply a [`WriteBatch`] *together with* the changelog
//! offset it corresponds to, atomically. Everything else is in [`changelog`]: the [`LoggedStore`] a processor
//! writes to keeps its uncommitted writes in a batch (reads see them), sends each write to the changelog, and
//! applies the batch to the backend only after the broker acknowledged those changelog records and the input
//! offsets were committed. So a backend's checkpoint never claims more than the changelog holds, and a restart
//! resumes the restore from that checkpoint instead of rebuilding from zero. All RocksDB stores of an instance
//! share one memory [`budget`].

pub mod budget;
pub mod changelog;
pub mod log_batch;
pub mod memory;
pub mod rocksdb;

pub use changelog::LoggedStore;
pub use log_batch::LogBatch;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::PathBuf;

/// A local store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("rocksdb store {store}: {source}")]
    RocksDb {
        /// The store.
        store: String,
        /// RocksDB's error.
        source: ::rocksdb::Error,
    },
    /// A stored value could not be decoded (or encoded) as the processor expected.
    #[error("store {store}: value for key {key:?} is not valid: {reason}")]
    Codec {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A filesystem operation on the state directory failed.
    #[error("state directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A processor asked for a store its topology did not declare.
    #[error("no store named {0:?} in this task")]
    Unknown(String),
}

/// Key-value pairs, as range reads return them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Iteration order for range reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Smallest key first.
    Ascending,
    /// Largest key first.
    Descending,
}

/// A set of puts (`Some`) and deletes (`None`), applied atomically.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteBatch {
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl WriteBatch {
    /// Record a put, replacing any earlier write of the key in this batch.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.insert(key, Some(value));
    }
    /// Record a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.entries.insert(key, None);
    }
    /// Writes in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.entries.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }
    /// The writes, by value, in key order.
    pub fn into_entries(self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        self.entries.into_iter()
    }
    /// Number of distinct keys written.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A store backend: reads, plus atomic application of a batch with its changelog checkpoint.
///
/// Backends are shared (`Arc`) between the task that writes them and HTTP handlers that read them
/// ([`crate::query`]), so reads take `&self`.
pub trait KeyValueStore: Send + Sync {
    /// The store's name.
    fn name(&self) -> &str;
    /// The committed value of a key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` committed entries with keys within the bounds, in the given order.
    fn range(&self, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>, order: Order, limit: usize) -> Result<Entries, StoreError>;
    /// Apply the batch and, if given, record `checkpoint` (the changelog offset to resume a restore from), atomically.
    fn apply(&self, batch: &WriteBatch, checkpoint: Option<i64>) -> Result<(), StoreError>;
    /// Apply changelog records in their order (a later write of a key wins) and, if given, record `checkpoint`,
    /// atomically: what a restore writes. The default coalesces them into a [`WriteBatch`] first; a backend can
    /// apply them as they come.
    fn apply_log(&self, records: &LogBatch, checkpoint: Option<i64>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (key, value) in records.iter() {
            match value {
                Some(value) => batch.put(key.to_vec(), value.to_vec()),
                None => batch.delete(key.to_vec()),
            }
        }
        self.apply(&batch, checkpoint)
    }
    /// The changelog offset this store's data corresponds to: a restore resumes there. `None`: restore from the start.
    fn checkpoint(&self) -> Result<Option<i64>, StoreError>;
}

/// Where a store keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A `BTreeMap`; restored from the changelog in full whenever its task is created.
    InMemory,
    /// RocksDB under the state directory; survives restarts and resumes restore from its checkpoint.
    RocksDb,
}

/// A store a topology declares: its name and backend. Every store is changelogged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// Name, unique in the topology; part of the changelog topic's name.
    pub name: String,
    /// Backend.
    pub backend: Backend,
}

impl StoreSpec {
    /// A RocksDB-backed store.
    pub fn persistent(name: impl Into<String>) -> Self {
        StoreSpec { name: name.into(), backend: Backend::RocksDb }
    }
    /// An in-memory store.
    pub fn in_memory(name: impl Into<String>) -> Self {
        StoreSpec { name: name.into(), backend: Backend::InMemory }
    }
    /// `<application-id>-<store>-changelog`.
    pub fn changelog_topic(&self, application_id: &str) -> String {
        format!("{application_id}-{}-changelog", self.name)
    }
}
