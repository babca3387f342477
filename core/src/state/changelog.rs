//! The changelog-logging store: what a processor writes to.
//!
//! Every write goes three places: into the task's *pending batch* (so the processor reads its own writes at once),
//! onto the compacted changelog topic `<application-id>-<store>-changelog` (partition = the task's partition), and,
//! only at commit, into the backend, together with the changelog offset it reached.
//!
//! Changelog writes are *coalesced*: a key written many times between two commits (a window updated by every trade
//! of a busy symbol) is sent once, with its latest value, when the task commits (or flushes). Compaction would keep
//! only that last value anyway; sending the others costs broker round trips and restore time for nothing. This is
//! the changelog half of Kafka Streams' record cache. A pending write carries a mark saying it is not sent yet, so
//! a write costs one search of one map and no second copy of its value. The commit order is the one that keeps the
//! checkpoint honest (see invariants 2 and 3 in docs/src/invariants.md): flush outputs and changelog, wait for the
//! acks, commit the input offsets, then apply the batch with the checkpoint. A crash anywhere leaves a backend that
//! is behind the changelog, never ahead of it, and restore replays the difference.
//!
//! The same pending batch is what exactly-once needs later: writes of an uncommitted transaction never reach
//! the backend, so a crash never forces a wipe of the local store.
//!
//! A record is processed all or nothing: the store keeps what each write of the record in hand replaced, so when
//! the record is dead-lettered or retried, `LoggedStore::roll_back` puts the pending writes back as they were
//! before it (the task calls `LoggedStore::keep` once the record succeeded). Writes already sent, by a processor's
//! `flush`, stay: they are on the changelog.

use super::{Entries, KeyValueStore, Order, StoreError, WriteBatch};
use crate::record::OutgoingRecord;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// A store as a processor sees it: read-your-writes over a backend, every write changelogged.
pub struct LoggedStore {
    inner: Arc<dyn KeyValueStore>,
    changelog_topic: String,
    partition: i32,
    /// The writes not committed yet, latest per key: one map, searched once per write.
    pending: BTreeMap<Vec<u8>, Pending>,
    /// The record in hand's writes so far, each with the key's earlier pending write, oldest first.
    undo: Vec<Replaced>,
}

/// A key's latest uncommitted write.
#[derive(Debug, Clone)]
struct Pending {
    /// The value written, `None` for a delete.
    value: Option<Vec<u8>>,
    /// Not sent to the changelog yet.
    unsent: bool,
}

/// What one write replaced, so that it can be taken back.
struct Replaced {
    key: Vec<u8>,
    earlier: Option<Pending>,
}

impl LoggedStore {
    /// Wrap a backend whose changelog is `changelog_topic`, partition `partition`.
    pub fn new(inner: Arc<dyn KeyValueStore>, changelog_topic: String, partition: i32) -> Self {
        LoggedStore { inner, changelog_topic, partition, pending: BTreeMap::new(), undo: Vec::new() }
    }

    /// The same backend without the writes not committed yet: pending writes and undo are dropped.
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
        match self.pending.get(key) {
            Some(p) => Ok(p.value.clone()),
            None => self.inner.get(key),
        }
    }

    /// Write a value.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.write(key, Some(value));
    }

    /// Delete a key (a tombstone on the changelog).
    pub fn delete(&mut self, key: Vec<u8>) {
        self.write(key, None);
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let write = Pending { value, unsent: true };
        let earlier = match self.pending.get_mut(&key) {
            Some(p) => Some(std::mem::replace(p, write)),
            None => self.pending.insert(key.clone(), write),
        };
        self.undo.push(Replaced { key, earlier });
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
            match r.earlier {
                Some(earlier) => self.pending.insert(r.key, earlier),
                None => self.pending.remove(&r.key),
            };
        }
        any
    }

    /// Up to `limit` entries within the bounds, in order, uncommitted writes included.
    pub fn range(&self, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>, order: Order, limit: usize) -> Result<Entries, StoreError> {
        // Fetch enough committed entries that deletes in the pending batch cannot starve the result.
        let committed = self.inner.range(from.clone(), to.clone(), order, limit.saturating_add(self.pending.len()))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = committed.into_iter().collect();
        for (k, p) in self.pending.range::<Vec<u8>, _>((from, to)) {
            match &p.value {
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
        for (key, p) in self.pending.iter_mut().filter(|(_, p)| p.unsent) {
            p.unsent = false;
            out.push(OutgoingRecord {
                topic: self.changelog_topic.clone(),
                partition: Some(self.partition),
                key: Some(key.clone()),
                value: p.value.clone(),
                headers: Vec::new(),
                timestamp: None,
            });
        }
    }

    /// Apply the pending writes to the backend with the changelog offset they reach. Call only after the changelog
    /// records were acknowledged and the input offsets committed. A write not sent to the changelog yet stays
    /// pending too, so the next drain still sends it.
    pub(crate) fn commit(&mut self, checkpoint: Option<i64>) -> Result<(), StoreError> {
        if self.pending.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for (key, p) in std::mem::take(&mut self.pending) {
            let value = if p.unsent {
                let value = p.value.clone();
                self.pending.insert(key.clone(), p);
                value
            } else {
                p.value
            };
            match value {
                Some(v) => batch.put(key, v),
                None => batch.delete(key),
            }
        }
        if let Err(e) = self.inner.apply(&batch, checkpoint) {
            for (key, value) in batch.into_entries() {
                self.pending.entry(key).or_insert(Pending { value, unsent: false });
            }
            return Err(e);
        }
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
    fn a_write_committed_before_it_was_sent_is_still_sent() {
        let backend: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new("s"));
        let mut store = LoggedStore::new(backend.clone(), "c".into(), 0);
        store.put(b"a".to_vec(), b"1".to_vec());
        store.commit(Some(1)).expect("commit");
        assert_eq!(backend.get(b"a").expect("get"), Some(b"1".to_vec()));
        let mut out = Vec::new();
        store.drain_changelog(&mut out);
        assert_eq!(out.iter().map(|r| (r.key.clone(), r.value.clone())).collect::<Vec<_>>(), [(Some(b"a".to_vec()), Some(b"1".to_vec()))]);
        out.clear();
        store.drain_changelog(&mut out);
        assert!(out.is_empty(), "sent once");
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
