//! The changelog-logging store: what a processor writes to.
//!
//! Every write goes three places: into the task's *pending batch* (so the processor reads its own writes at once),
//! onto the compacted changelog topic `<application-id>-<store>-changelog` (partition = the task's partition), and,
//! only at commit, into the backend, together with the changelog offset it reached.
//!
//! Changelog writes are *coalesced*: a key written many times between two commits (a window updated by every
//! trade of a busy symbol) is sent once, with its latest value, when the task commits (or flushes). Compaction
//! would keep only that last value anyway; sending the others costs broker round trips and restore time for
//! nothing. This is the changelog half of Kafka Streams' record cache. The commit order is the one
//! that keeps the checkpoint honest (see invariants 2 and 3 in docs/src/invariants.md): flush outputs and changelog,
//! wait for the acks, commit the input offsets, then apply the batch with the checkpoint. A crash anywhere leaves a
//! backend that is behind the changelog, never ahead of it, and restore replays the difference.
//!
//! The same pending batch is what exactly-once needs later: writes of an uncommitted transaction never reach
//! the backend, so a crash never forces a wipe of the local store.
//!
//! A record is processed all or nothing: the store keeps what each write of the record in hand replaced, so when
//! the record is dead-lettered or retried, `LoggedStore::roll_back` puts both batches back as they were before it
//! (the task calls `LoggedStore::keep` once the record succeeded). Writes already sent, by a processor's
//! `flush`, stay: they are on the changelog.

use super::{Entries, KeyValueStore, Order, StoreError, WriteBatch};
use crate::record::OutgoingRecord;
use std::ops::Bound;
use std::sync::Arc;

/// A store as a processor sees it: read-your-writes over a backend, every write changelogged.
pub struct LoggedStore {
    inner: Arc<dyn KeyValueStore>,
    changelog_topic: String,
    partition: i32,
    pending: WriteBatch,
    /// Latest write per key not yet sent to the changelog.
    unsent: WriteBatch,
    /// The record in hand's writes so far, each with what it replaced in `pending` and `unsent`, oldest first.
    undo: Vec<Replaced>,
}

/// What one write replaced, so that it can be taken back.
struct Replaced {
    key: Vec<u8>,
    pending: Option<Option<Vec<u8>>>,
    unsent: Option<Option<Vec<u8>>>,
}

impl LoggedStore {
    /// Wrap a backend whose changelog is `changelog_topic`, partition `partition`.
    pub fn new(inner: Arc<dyn KeyValueStore>, changelog_topic: String, partition: i32) -> Self {
        LoggedStore { inner, changelog_topic, partition, pending: WriteBatch::default(), unsent: WriteBatch::default(), undo: Vec::new() }
    }

    /// The same backend without the writes not committed yet: pending, unsent and undo are dropped.
    pub(crate) fn discarded(self) -> Self {
        LoggedStore::new(self.inner, self.changelog_topic, self.partition)
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The changelog topic.
    pub fn changelog_topic(&self) -> &str {
        &self.changelog_topic
    }

    /// The value of a key, including writes not yet committed.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.lookup(key) {
            Some(v) => Ok(v.map(<[u8]>::to_vec)),
            None => self.inner.get(key),
        }
    }

    /// Write a value.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let unsent = self.unsent.replace(key.clone(), Some(value.clone()));
        let pending = self.pending.replace(key.clone(), Some(value));
        self.undo.push(Replaced { key, pending, unsent });
    }

    /// Delete a key (a tombstone on the changelog).
    pub fn delete(&mut self, key: Vec<u8>) {
        let unsent = self.unsent.replace(key.clone(), None);
        let pending = self.pending.replace(key.clone(), None);
        self.undo.push(Replaced { key, pending, unsent });
    }

    /// The record in hand succeeded: its writes stay.
    pub(crate) fn keep(&mut self) {
        self.undo.clear();
    }

    /// The record in hand failed: take back its writes since it began (or since the last flush). Returns whether
    /// there was anything to take back.
    pub(crate) fn roll_back(&mut self) -> bool {
        let any = !self.undo.is_empty();
        for r in self.undo.drain(..).rev() {
            self.unsent.restore(r.key.clone(), r.unsent);
            self.pending.restore(r.key, r.pending);
        }
        any
    }

    /// Up to `limit` entries within the bounds, in order, uncommitted writes included.
    pub fn range(&self, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>, order: Order, limit: usize) -> Result<Entries, StoreError> {
        // Fetch enough committed entries that deletes in the pending batch cannot starve the result.
        let committed = self.inner.range(from.clone(), to.clone(), order, limit.saturating_add(self.pending.len()))?;
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = committed.into_iter().collect();
        for (k, v) in self.pending.range(&from, &to) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(match order {
            Order::Ascending => merged.into_iter().take(limit).collect(),
            Order::Descending => merged.into_iter().rev().take(limit).collect(),
        })
    }

    /// Read a JSON value stored under a string key.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.get(key.as_bytes())?.map(|b| serde_json::from_slice(&b)).transpose().map_err(|e| StoreError::Codec {
            store: self.name().to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Write a JSON value under a string key.
    pub fn put_json<T: serde::Serialize>(&mut self, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Codec {
            store: self.name().to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        self.put(key.as_bytes().to_vec(), bytes);
        Ok(())
    }

    /// The changelog records for the keys written since the last call (latest value each, in key order), for the
    /// task to hand to the producer.
    pub(crate) fn drain_changelog(&mut self, out: &mut Vec<OutgoingRecord>) {
        self.undo.clear();
        for (key, value) in std::mem::take(&mut self.unsent).into_entries() {
            out.push(OutgoingRecord {
                topic: self.changelog_topic.clone(),
                partition: Some(self.partition),
                key: Some(key),
                value,
                headers: Vec::new(),
                timestamp: None,
            });
        }
    }

    /// Apply the pending batch to the backend with the changelog offset it reaches. Call only after the changelog
    /// records were acknowledged and the input offsets committed.
    pub(crate) fn commit(&mut self, checkpoint: Option<i64>) -> Result<(), StoreError> {
        if self.pending.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        self.inner.apply(&self.pending, checkpoint)?;
        self.pending = WriteBatch::default();
        self.undo.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::memory::MemoryStore;

    #[test]
    fn reads_see_pending_writes_and_backend_sees_them_only_after_commit() {
        let backend: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new("s"));
        let mut store = LoggedStore::new(backend.clone(), "app-s-changelog".into(), 3);
        store.put(b"a".to_vec(), b"1".to_vec());
        store.put(b"b".to_vec(), b"2".to_vec());
        store.delete(b"a".to_vec());
        assert_eq!(store.get(b"a").expect("get"), None);
        assert_eq!(store.get(b"b").expect("get"), Some(b"2".to_vec()));
        assert_eq!(backend.get(b"b").expect("get"), None, "nothing reaches the backend before commit");

        let mut out = Vec::new();
        store.drain_changelog(&mut out);
        let logged: Vec<_> = out.iter().map(|r| (r.key.clone(), r.value.clone(), r.partition)).collect();
        assert_eq!(
            logged,
            vec![(Some(b"a".to_vec()), None, Some(3)), (Some(b"b".to_vec()), Some(b"2".to_vec()), Some(3))],
            "one record per key, its latest write: a's put and delete coalesce into the delete"
        );
        store.commit(Some(3)).expect("commit");
        assert_eq!(backend.get(b"b").expect("get"), Some(b"2".to_vec()));
        assert_eq!(backend.get(b"a").expect("get"), None);
    }

    #[test]
    fn a_failed_record_takes_back_exactly_its_own_writes() {
        let backend: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new("s"));
        let mut store = LoggedStore::new(backend, "c".into(), 0);
        store.put(b"a".to_vec(), b"1".to_vec());
        store.keep();
        // The failing record overwrites a twice, deletes it, and writes b.
        store.put(b"a".to_vec(), b"2".to_vec());
        store.put(b"a".to_vec(), b"3".to_vec());
        store.delete(b"a".to_vec());
        store.put(b"b".to_vec(), b"x".to_vec());
        assert!(store.roll_back());
        assert!(!store.roll_back(), "nothing left to take back");
        assert_eq!((store.get(b"a").expect("get"), store.get(b"b").expect("get")), (Some(b"1".to_vec()), None));
        let mut out = Vec::new();
        store.drain_changelog(&mut out);
        assert_eq!(out.iter().map(|r| (r.key.clone(), r.value.clone())).collect::<Vec<_>>(), [(Some(b"a".to_vec()), Some(b"1".to_vec()))]);
    }

    #[test]
    fn range_merges_pending_writes_over_committed_data() {
        let backend: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new("s"));
        let mut store = LoggedStore::new(backend, "c".into(), 0);
        for k in ["a", "b", "c", "d"] {
            store.put(k.as_bytes().to_vec(), b"old".to_vec());
        }
        store.commit(None).expect("commit");
        store.delete(b"d".to_vec());
        store.delete(b"c".to_vec());
        store.put(b"e".to_vec(), b"new".to_vec());
        let got = store.range(Bound::Unbounded, Bound::Unbounded, Order::Descending, 2).expect("range");
        assert_eq!(got, vec![(b"e".to_vec(), b"new".to_vec()), (b"b".to_vec(), b"old".to_vec())]);
    }
}
