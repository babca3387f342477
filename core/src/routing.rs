//! Queries answered by whichever instance owns the key, and lists answered by all of them. Kafka Streams hands applications the metadata (which
//! instance holds which partition) and leaves the remote call to them; here the HTTP layer makes it.
//!
//! - Each stream thread of an instance started with `--advertised-url` publishes, whenever its tasks change, the
//!   tasks it owns to the compacted topic `<application-id>-owners` (key: `<url>#<thread>`; value:
//!   `{"url", "tasks", "at"}`, tasks named `<sub-topology>_<partition>`).
//! - Every instance reads that topic as a global table, so it knows every owner.
//! - A request for a key is routed to the task that holds the key in the store the route reads: that store's
//!   sub-topology, and the key's partition (murmur2, as the producers partition) of its partition count. It is
//!   served here when this instance owns the task, otherwise forwarded to the owner, whose answer is returned as
//!   is. A forwarded request carries [`FORWARDED_HEADER`] and is never forwarded again, so a stale view can cost
//!   one hop, never a loop.
//! - A key whose task nobody can answer for now (restoring, moving, or its owner does not answer) gets 503 with
//!   `Retry-After`, never a 404 that would say the key does not exist; or, when the caller allows, a stale
//!   answer from a standby replica (`crate::stale`).
//! - A list whose parts live in every task of a sub-topology is asked of every owner ([`Routing::owners`]) and
//!   merged by [`crate::http::gather`].
//! - A task claimed by several records (an instance that died before it could release it, and the one that took it
//!   over) belongs to the latest claim.

use crate::query::StoreRegistry;
use crate::runtime::Partitions;
use crate::state::Order;
use crate::task_id::TaskId;
use std::collections::{BTreeMap, BTreeSet};
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
    /// By this instance, which holds the key's task.
    Local,
    /// By the instance at this URL.
    Remote(String),
    /// By this instance, whose task for the key is restoring its state: nothing can be answered yet.
    Restoring,
    /// By nobody now: the task is moving (its last owner let it go, or died, and no claim has come yet), or the
    /// runtime does not know its partitions yet.
    Unowned,
}

/// A runtime's view of who owns the tasks of one sub-topology, for the HTTP routes that read its stores.
#[derive(Clone)]
pub struct Routing {
    pub(crate) url: String,
    /// `<application-id>-owners`, read as a global store.
    pub(crate) store: String,
    /// The instance's stores: the owners store among them, and the replicas it keeps.
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
    /// The task that holds `key`, once the runtime knows the sub-topology's partition count.
    pub fn task_of(&self, key: &str) -> Option<TaskId> {
        let partitions = self.partitions.get().map_or(0, |p| p.of_subtopology(self.subtopology));
        (partitions > 0).then(|| TaskId::new(self.subtopology, crate::partition::partition_for(key.as_bytes(), partitions)))
    }

    /// Who serves `task`.
    pub fn owner(&self, task: TaskId) -> Owner {
        if self.status.restoring().contains(&task) {
            return Owner::Restoring;
        }
        if self.local_tasks().contains(&task) {
            return Owner::Local;
        }
        match self.claimants().remove(&task) {
            Some(url) if url != self.url => Owner::Remote(url),
            _ => Owner::Unowned,
        }
    }

    /// The replica of `task` this instance keeps, for a stale read.
    pub fn replica(&self, task: TaskId) -> Option<crate::stale::Replica> {
        self.stores.replica(task)
    }

    fn claimants(&self) -> BTreeMap<TaskId, String> {
        claimants(&self.stores, &self.store)
    }

    /// Who holds the parts of a list over every task of the sub-topology: the other instances to ask, and the
    /// tasks nobody can answer for now (restoring here, or claimed by nobody, as in the middle of a rebalance).
    pub fn owners(&self) -> Owners {
        let partitions = self.partitions.get().map_or(0, |p| p.of_subtopology(self.subtopology));
        let (local, restoring, claimants) = (self.local_tasks(), self.status.restoring(), self.claimants());
        let mut owners = Owners::default();
        for task in (0..partitions).map(|p| TaskId::new(self.subtopology, p)) {
            if restoring.contains(&task) {
                owners.missing.push(format!("task {task} is restoring"));
            } else if !local.contains(&task) {
                match claimants.get(&task) {
                    Some(url) if *url != self.url => {
                        owners.remote.insert(url.clone());
                    }
                    Some(_) => {}
                    None => owners.missing.push(format!("task {task} has no owner")),
                }
            }
        }
        owners
    }

    /// This instance's tasks of the sub-topology that are restoring: what a list answered here lacks.
    pub fn restoring_here(&self) -> Vec<String> {
        let restoring = self.status.restoring();
        restoring.iter().filter(|t| t.subtopology == self.subtopology).map(|t| format!("task {t} is restoring")).collect()
    }

    fn local_tasks(&self) -> BTreeSet<TaskId> {
        self.local.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where the parts of a list are, by [`Routing::owners`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Owners {
    /// The other instances that own tasks of the sub-topology.
    pub remote: BTreeSet<String>,
    /// What no instance can answer for now, said as a reason each.
    pub missing: Vec<String>,
}

/// Every task's newest claimant (its URL), by the claims in the owners store `store` (a claim that a newer one
/// superseded, such as a dead instance's, claims nothing).
pub(crate) fn claimants(stores: &StoreRegistry, store: &str) -> BTreeMap<TaskId, String> {
    let claims = stores.range(store, Bound::Unbounded, Bound::Unbounded, Order::Ascending, usize::MAX).unwrap_or_default();
    let mut newest: BTreeMap<TaskId, (i64, String)> = BTreeMap::new();
    for claim in claims.iter().filter_map(|(_, v)| serde_json::from_slice::<Claim>(v).ok()) {
        for task in claim.tasks {
            if newest.get(&task).is_none_or(|(at, _)| claim.at > *at) {
                newest.insert(task, (claim.at, claim.url.clone()));
            }
        }
    }
    newest.into_iter().map(|(task, (_, url))| (task, url)).collect()
}

/// For tests: a view of sub-topology 1 over 4 partitions from `http://this-instance`, which owns the tasks of
/// `local`, with `claims` (URL and partition) in its owners store `owners`.
#[cfg(test)]
pub(crate) fn test_routing(claims: &[(&str, i32)], local: &[i32]) -> Routing {
    use crate::state::{memory::MemoryStore, KeyValueStore, WriteBatch};
    let owners = MemoryStore::new("owners");
    let mut batch = WriteBatch::default();
    for (url, partition) in claims {
        let claim = Claim { url: (*url).to_owned(), tasks: BTreeSet::from([TaskId::new(1, *partition)]), at: 1 };
        batch.put(format!("{url}#{partition}").into_bytes(), serde_json::to_vec(&claim).expect("claim"));
    }
    owners.apply(&batch, None).expect("claims");
    let stores = StoreRegistry::default();
    stores.register(0, Arc::new(owners));
    Routing {
        url: "http://this-instance".into(),
        store: "owners".into(),
        stores,
        subtopology: 1,
        partitions: Arc::new(OnceLock::from(Partitions::uniform(2, 4))),
        local: Arc::new(Mutex::new(local.iter().map(|p| TaskId::new(1, *p)).collect())),
        status: crate::runtime::RuntimeStatus::default(),
    }
}
