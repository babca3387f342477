//! Interactive queries: HTTP handlers read the *committed* contents of the tasks' stores, on whichever partition
//! holds the key. Reads never see a task's uncommitted writes, so an answer never shows state the changelog might
//! still lose. Tasks register their stores when created and unregister them when closed; standby replicas
//! register theirs apart, read only by a query that accepts a stale answer (`crate::stale`).

use crate::stale::Replica;
use crate::state::{Entries, KeyValueStore, Order, StoreError};
use crate::task_id::TaskId;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

/// The stores of the tasks this instance owns, by (store name, partition), and of the replicas it keeps, by task.
#[derive(Clone, Default)]
pub struct StoreRegistry {
    inner: Arc<RwLock<StoreMap>>,
    replicas: Arc<RwLock<BTreeMap<TaskId, Replica>>>,
}

type StoreMap = BTreeMap<(String, i32), Arc<dyn KeyValueStore>>;

impl StoreRegistry {
    pub(crate) fn register(&self, partition: i32, store: Arc<dyn KeyValueStore>) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).insert((store.name().to_owned(), partition), store);
    }

    pub(crate) fn unregister(&self, name: &str, partition: i32) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).remove(&(name.to_owned(), partition));
    }

    pub(crate) fn register_replica(&self, task: TaskId, replica: Replica) {
        self.replicas.write().unwrap_or_else(|p| p.into_inner()).insert(task, replica);
    }

    pub(crate) fn unregister_replica(&self, task: TaskId) {
        self.replicas.write().unwrap_or_else(|p| p.into_inner()).remove(&task);
    }

    /// The replica of `task` this instance keeps, caught up, if it keeps one.
    pub fn replica(&self, task: TaskId) -> Option<Replica> {
        self.replicas.read().unwrap_or_else(|p| p.into_inner()).get(&task).cloned()
    }

    /// The partitions of `store` this instance holds (and, in a stale read, the replica's: `crate::stale`).
    pub fn partitions(&self, store: &str) -> Vec<(i32, Arc<dyn KeyValueStore>)> {
        let mut held: Vec<(i32, Arc<dyn KeyValueStore>)> = self
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((name, _), _)| name == store)
            .map(|((_, p), s)| (*p, s.clone()))
            .collect();
        held.extend(crate::stale::replica_stores(store));
        held
    }

    /// A key's committed value, from whichever local partition of `store` has it.
    pub fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        for (_, s) in self.partitions(store) {
            if let Some(v) = s.get(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Like [`get`](Self::get), decoded from JSON.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, store: &str, key: &str) -> Result<Option<T>, StoreError> {
        self.get(store, key.as_bytes())?.map(|b| serde_json::from_slice(&b)).transpose().map_err(|e| StoreError::Codec {
            store: store.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Up to `limit` committed entries of `store` with keys within the bounds, merged across local partitions, in order.
    pub fn range(&self, store: &str, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>, order: Order, limit: usize) -> Result<Entries, StoreError> {
        let mut all = Vec::new();
        for (_, s) in self.partitions(store) {
            all.extend(s.range(from.clone(), to.clone(), order, limit)?);
        }
        match order {
            Order::Ascending => all.sort_by(|a, b| a.0.cmp(&b.0)),
            Order::Descending => all.sort_by(|a, b| b.0.cmp(&a.0)),
        }
        all.truncate(limit);
        Ok(all)
    }

    /// The `limit` largest keys of `store` across local partitions (largest first): "most recent" for time-ordered keys.
    pub fn last(&self, store: &str, limit: usize) -> Result<Entries, StoreError> {
        self.range(store, Bound::Unbounded, Bound::Unbounded, Order::Descending, limit)
    }
}
