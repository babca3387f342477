//! Queries answered by whichever instance owns the key. Kafka Streams hands applications the metadata (which
//! instance holds which partition) and leaves the remote call to them; here the HTTP layer makes it.
//!
//! - Each stream thread of an instance started with `--advertised-url` publishes, whenever its tasks change, the
//!   tasks it owns to the compacted topic `<application-id>-owners` (key: `<url>#<thread>`; value:
//!   `{"url", "tasks", "at"}`, tasks named `<sub-topology>_<partition>`).
//! - Every instance reads that topic as a global table, so it knows every owner.
//! - A request for a key is routed to the task that holds the key in the store the route reads: that store's
//!   sub-topology, and the key's partition (murmur2, as the producers partition) of its partition count. It is
//!   served here when this instance owns the task (or nobody is known to), otherwise forwarded to the owner, whose
//!   answer is returned as is. A forwarded request carries [`FORWARDED_HEADER`] and is always served where it lands, so a stale view can
//!   cost one hop, never a loop.
//! - A task claimed by several records (an instance that died before it could release it, and the one that took it
//!   over) belongs to the latest claim.

use crate::query::StoreRegistry;
use crate::runtime::Partitions;
use crate::state::Order;
use crate::task_id::TaskId;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock};

/// Set on a request one instance forwards to another.
pub const FORWARDED_HEADER: &str = "x-streamsuite-forwarded";

/// `<application-id>-owners`: the topic (and global store) of task ownership.
pub fn owners_topic(application_id: &str) -> String {
    format!("{application_id}-owners")
}

/// One instance's claim, as published.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// The instance's advertised URL.
    pub url: String,
    /// The tasks it owns.
    pub tasks: BTreeSet<TaskId>,
    /// When it published this (wall clock, ms): the later claim wins.
    pub at: i64,
}

/// Where a key is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// By this instance (or nobody else is known to own it).
    Local,
    /// By the instance at this URL.
    Remote(String),
    /// By this instance, whose task for the key is restoring its state: nothing can be answered yet.
    Restoring,
}

/// A runtime's view of who owns the tasks of one sub-topology, for the HTTP routes that read its stores.
#[derive(Clone)]
pub struct Routing {
    pub(crate) url: String,
    /// `<application-id>-owners`, read as a global store.
    pub(crate) store: String,
    pub(crate) stores: StoreRegistry,
    /// The sub-topology whose stores the routes read.
    pub(crate) subtopology: usize,
    /// Every sub-topology's partition count, once the runtime knows them.
    pub(crate) partitions: Arc<OnceLock<Partitions>>,
    /// The tasks this instance owns.
    pub(crate) local: Arc<Mutex<BTreeSet<TaskId>>>,
    /// The runtime's status: which of the local tasks are restoring.
    pub(crate) status: crate::runtime::RuntimeStatus,
}

impl Routing {
    /// Who serves `key`.
    pub fn owner(&self, key: &str) -> Owner {
        let partitions = self.partitions.get().map_or(0, |p| p.of_subtopology(self.subtopology));
        if partitions <= 0 {
            return Owner::Local;
        }
        let task = TaskId::new(self.subtopology, crate::partition::partition_for(key.as_bytes(), partitions));
        if self.status.restoring().contains(&task) {
            return Owner::Restoring;
        }
        if self.local.lock().unwrap_or_else(|e| e.into_inner()).contains(&task) {
            return Owner::Local;
        }
        let claims = self.stores.range(&self.store, Bound::Unbounded, Bound::Unbounded, Order::Ascending, usize::MAX).unwrap_or_default();
        let newest = claims
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<Claim>(v).ok())
            .filter(|c| c.tasks.contains(&task))
            .max_by_key(|c| c.at);
        match newest {
            Some(c) if c.url != self.url => Owner::Remote(c.url),
            _ => Owner::Local,
        }
    }
}
