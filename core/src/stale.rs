//! Stale reads: a keyed query answered from a standby replica when the key's owner cannot answer (it died, or
//! its task is moving or restoring) and the caller said a stale answer will do (`?stale=ok`, or the request
//! header [`ALLOW_STALE_HEADER`]). Kafka Streams offers the same through `StoreQueryParameters.enableStaleStores()`
//! and leaves telling the caller how stale to the application; here the answer carries [`STALE_HEADER`].
//!
//! - A replica (`runtime::standby`) registers its stores here once it has caught up with its changelogs, and
//!   unregisters them before it closes them; [`Replica::behind_ms`] counts from the last time it stood at their
//!   ends.
//! - The HTTP layer runs the route's handler inside [`read_from`], a scope in which the
//!   [`StoreRegistry`](crate::query::StoreRegistry) also reads the replica's stores. Handlers do not change: they
//!   read the registry as always.
//! - How far behind: the milliseconds since the replica last stood at its changelogs' committed ends. Everything
//!   the owner committed before then is in the answer; what it committed after is not.

use crate::state::KeyValueStore;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Set by a caller that accepts an answer from a replica (any value; `?stale=ok` says the same).
pub const ALLOW_STALE_HEADER: &str = "x-streamsuite-allow-stale";

/// On an answer from a replica: how many milliseconds behind its changelogs' ends it may be.
pub const STALE_HEADER: &str = "x-streamsuite-stale-ms";

/// The stores of one standby replica of a task, for stale reads.
#[derive(Clone)]
pub struct Replica {
    /// The task's partition.
    pub(crate) partition: i32,
    pub(crate) stores: Vec<Arc<dyn KeyValueStore>>,
    /// Wall clock (ms) when the replica last stood at its changelogs' ends.
    pub(crate) caught_up_at: Arc<AtomicI64>,
}

impl Replica {
    /// How far behind the replica may be at wall clock `now_ms`.
    pub fn behind_ms(&self, now_ms: i64) -> i64 {
        (now_ms - self.caught_up_at.load(Ordering::Relaxed)).max(0)
    }
}

tokio::task_local! {
    static READING: Replica;
}

/// Run `query` with the registry reading `replica`'s stores too.
pub async fn read_from<F: Future>(replica: Replica, query: F) -> F::Output {
    READING.scope(replica, query).await
}

/// The stores named `store` of the replica the current query reads, if it reads one.
pub(crate) fn replica_stores(store: &str) -> Vec<(i32, Arc<dyn KeyValueStore>)> {
    READING.try_with(|r| r.stores.iter().filter(|s| s.name() == store).map(|s| (r.partition, s.clone())).collect()).unwrap_or_default()
}
