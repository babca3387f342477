//! Queries answered by whichever instance owns the key. Kafka Streams hands applications the metadata (which
//! instance holds which partition) and leaves the remote call to them; here the HTTP layer makes it.
//!
//! - Each stream thread of an instance started with `--advertised-url` publishes, whenever its tasks change, the
//!   partitions it owns to the compacted topic `<application-id>-owners` (key: `<url>#<thread>`; value:
//!   `{"url", "partitions", "at"}`).
//! - Every instance reads that topic as a global table, so it knows every owner.
//! - A request for a key is routed by the key's partition (murmur2, as the producers partition): served here when
//!   this instance owns it (or nobody is known to), otherwise forwarded to the owner, whose answer is returned as
//!   is. A forwarded request carries [`FORWARDED_HEADER`] and is always served where it lands, so a stale view can
//!   cost one hop, never a loop.
//! - A partition claimed by several records (an instance that died before it could release it, and the one that
//!   took it over) belongs to the latest claim.

use crate::query::StoreRegistry;
use crate::state::Order;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

/// Set on a request one instance forwards to another.
pub const FORWARDED_HEADER: &str = "x-streamsuite-forwarded";

/// `<application-id>-owners`: the topic (and global store) of partition ownership.
pub fn owners_topic(application_id: &str) -> String {
    format!("{application_id}-owners")
}

/// One instance's claim, as published.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// The instance's advertised URL.
    pub url: String,
    /// The input partitions it owns.
    pub partitions: BTreeSet<i32>,
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

/// A runtime's view of who owns what, for its HTTP layer.
#[derive(Clone)]
pub struct Routing {
    pub(crate) url: String,
    pub(crate) store: String,
    pub(crate) stores: StoreRegistry,
    pub(crate) partitions: Arc<AtomicI32>,
    pub(crate) local: Arc<Mutex<BTreeSet<i32>>>,
    /// The runtime's status: which of the local partitions are restoring.
    pub(crate) status: crate::runtime::RuntimeStatus,
}

impl Routing {
    /// Who serves `key`.
    pub fn owner(&self, key: &str) -> Owner {
        let partitions = self.partitions.load(Ordering::SeqCst);
        if partitions <= 0 {
            return Owner::Local;
        }
        let p = crate::partition::partition_for(key.as_bytes(), partitions);
        if self.status.restoring().contains(&p) {
            return Owner::Restoring;
        }
        if self.local.lock().unwrap_or_else(|e| e.into_inner()).contains(&p) {
            return Owner::Local;
        }
        let claims = self.stores.range(&self.store, Bound::Unbounded, Bound::Unbounded, Order::Ascending, usize::MAX).unwrap_or_default();
        let newest = claims
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<Claim>(v).ok())
            .filter(|c| c.partitions.contains(&p))
            .max_by_key(|c| c.at);
        match newest {
            Some(c) if c.url != self.url => Owner::Remote(c.url),
            _ => Owner::Local,
        }
    }
}
