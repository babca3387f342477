//! The in-memory backend: a `BTreeMap` behind a lock. It has no checkpoint of its own, so its task restores it
//! from the changelog from the beginning every time the task is created.

use super::{Entries, KeyValueStore, Order, StoreError, WriteBatch};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

/// An in-memory key-value store.
pub struct MemoryStore {
    name: String,
    data: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(name: impl Into<String>) -> Self {
        MemoryStore { name: name.into(), data: RwLock::new(BTreeMap::new()) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A poisoned lock only means another thread panicked mid-read; the map itself is still consistent
        // because writes are applied under the lock in one go.
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyValueStore for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().get(key).cloned())
    }

    fn range(&self, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>, order: Order, limit: usize) -> Result<Entries, StoreError> {
        let data = self.read();
        let range = data.range::<Vec<u8>, _>((from, to)).map(|(k, v)| (k.clone(), v.clone()));
        Ok(match order {
            Order::Ascending => range.take(limit).collect(),
            Order::Descending => range.rev().take(limit).collect(),
        })
    }

    fn apply(&self, batch: &WriteBatch, _checkpoint: Option<i64>) -> Result<(), StoreError> {
        let mut data = self.data.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in batch.iter() {
            match v {
                Some(v) => data.insert(k.to_vec(), v.to_vec()),
                None => data.remove(k),
            };
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }
}
