//! Standby replicas (`num.standby.replicas` in Kafka Streams): warm copies of other instances' tasks, so that a
//! failover replays only the tail of a changelog instead of all of it.
//!
//! - **Placement.** Every instance reads the owners topic (`crate::routing`), so every instance knows who owns
//!   which task. The owners, sorted by URL, form a ring; the replicas of a task live on the `N` instances after
//!   its owner on the ring (fewer when there are fewer others), never on the owner ([`placement`]). Each instance
//!   works out its own part from the same claims, so nobody has to assign standbys, and a member that joins or
//!   leaves moves only the replicas next to it on the ring.
//! - **Keeping a replica** is restoring that never ends: a thread of its own opens the task's RocksDB stores where
//!   the task would open them, replays their changelogs from the stores' checkpoints, and then once a second
//!   replays what was appended since. Only committed changelog records are read (`read_committed`). Once caught
//!   up, its stores answer stale reads (`crate::stale`) for the task while its owner cannot.
//! - **Promotion.** When the group assigns this instance a task it keeps a replica of, the stream thread stops the
//!   replica first ([`Standbys::promote`], which waits until its stores are closed) and then restores the task as
//!   any other: from the checkpoints the replica left, so only the records it lacked are replayed.
//! - **What is guaranteed.** librdkafka's assignor does not know where the replicas are, so a failover can land a
//!   task on an instance without its replica, which then restores it in full as without standbys. With `N` at
//!   least the number of other instances (one standby with two instances), every instance keeps a replica of
//!   every other owner's stateful tasks, and every failover lands on a replica.

use super::restore::{restore, Replay, Restored, Restorer};
use super::Shutdown;
use crate::error::StreamError;
use crate::query::StoreRegistry;
use crate::state::{Backend, KeyValueStore, StoreSpec};
use crate::task_id::TaskId;
use crate::time::Clock;
use crate::topology::Topology;
use rdkafka::consumer::BaseConsumer;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a replica reads what its changelogs gained, and how often placement is worked out again.
const PASS_INTERVAL: Duration = Duration::from_secs(1);

/// The tasks instance `me` keeps replicas of, given every task's owner and `replicas` per task (see the module
/// docs).
pub(crate) fn placement(owners: &BTreeMap<TaskId, String>, me: &str, replicas: usize) -> BTreeSet<TaskId> {
    let mut members: BTreeSet<&str> = owners.values().map(String::as_str).collect();
    members.insert(me);
    let ring: Vec<&str> = members.into_iter().collect();
    let hosts = replicas.min(ring.len() - 1);
    let on_me = |owner: &str| {
        let at = ring.iter().position(|m| *m == owner).unwrap_or(0);
        (1..=hosts).any(|k| ring[(at + k) % ring.len()] == me)
    };
    owners.iter().filter(|(_, owner)| owner.as_str() != me && on_me(owner)).map(|(task, _)| *task).collect()
}

/// One replica: the thread that keeps it.
struct Replica {
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<Result<(), StreamError>>,
}

impl Replica {
    /// Stop it and wait until its stores are closed.
    fn stop(self, task: TaskId) {
        self.cancel.store(true, Ordering::SeqCst);
        match self.handle.join() {
            Ok(Ok(())) => tracing::info!(%task, "standby replica stopped"),
            Ok(Err(e)) => tracing::warn!(%task, error = %e, "standby replica failed"),
            Err(_) => tracing::warn!(%task, "a standby replica's thread panicked"),
        }
    }
}

/// The replicas an instance keeps, shared by its stream threads (which promote a replica whose task becomes
/// active here) and its standby thread (which places them). One lock guards both, so a replica is never started
/// for a task that a stream thread is about to open.
#[derive(Clone, Default)]
pub(crate) struct Standbys {
    inner: Arc<Mutex<Kept>>,
}

#[derive(Default)]
struct Kept {
    replicas: BTreeMap<TaskId, Replica>,
    /// Tasks active (or restoring) on this instance: never replicas here.
    active: BTreeSet<TaskId>,
}

impl Standbys {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `tasks` become active here: their replicas stop, their stores closed, before the caller opens them.
    pub(crate) fn promote(&self, tasks: &BTreeSet<TaskId>) {
        let mut kept = self.lock();
        kept.active.extend(tasks.iter().copied());
        for task in tasks {
            if let Some(replica) = kept.replicas.remove(task) {
                tracing::info!(%task, "standby replica promoted: the task restores only what it lacks");
                replica.stop(*task);
            }
        }
    }

    /// `tasks` are no longer active here: replicas may be kept of them again.
    pub(crate) fn demote(&self, tasks: &BTreeSet<TaskId>) {
        self.lock().active.retain(|t| !tasks.contains(t));
    }

    /// Keep replicas of `wanted` (less the active tasks), starting them with `start`, and of the tasks nobody
    /// owns now (`owners` has no claim for them: their owner stopped and the group has not moved them yet, so the
    /// replica may be promoted any moment); the number kept.
    fn place(
        &self,
        wanted: &BTreeSet<TaskId>,
        owners: &BTreeMap<TaskId, String>,
        start: impl Fn(TaskId) -> Result<Replica, StreamError>,
    ) -> usize {
        let mut kept = self.lock();
        let unwanted = |task: &TaskId| !wanted.contains(task) && owners.contains_key(task);
        let ended: Vec<TaskId> = kept
            .replicas
            .iter()
            .filter(|(task, r)| unwanted(task) || kept.active.contains(task) || r.handle.is_finished())
            .map(|(task, _)| *task)
            .collect();
        for task in ended {
            if let Some(replica) = kept.replicas.remove(&task) {
                replica.stop(task);
            }
        }
        let new: Vec<TaskId> = wanted.iter().filter(|t| !kept.active.contains(t) && !kept.replicas.contains_key(t)).copied().collect();
        for task in new {
            match start(task) {
                Ok(replica) => {
                    tracing::info!(%task, "standby replica started");
                    kept.replicas.insert(task, replica);
                }
                Err(e) => tracing::warn!(%task, error = %e, "could not start a standby replica"),
            }
        }
        kept.replicas.len()
    }

    fn stop_all(&self) {
        let mut kept = self.lock();
        for (task, replica) in std::mem::take(&mut kept.replicas) {
            replica.stop(task);
        }
    }
}

/// The standby thread's work: placing this instance's replicas by the owners store, once a second, until
/// shutdown.
pub(crate) struct StandbyKeeper {
    pub(crate) standbys: Standbys,
    pub(crate) restorer: Restorer,
    pub(crate) topology: Arc<Topology>,
    /// The owners store, and where it is.
    pub(crate) stores: StoreRegistry,
    pub(crate) owners_store: String,
    /// This instance's advertised URL.
    pub(crate) url: String,
    pub(crate) replicas: usize,
}

impl StandbyKeeper {
    /// Place replicas until `shutdown`, then stop them all.
    pub(crate) fn run(self, shutdown: &Shutdown) {
        while !shutdown.is_triggered() {
            let owners = crate::routing::claimants(&self.stores, &self.owners_store);
            let wanted: BTreeSet<TaskId> =
                placement(&owners, &self.url, self.replicas).into_iter().filter(|t| !self.persistent_stores(t).is_empty()).collect();
            let kept = self.standbys.place(&wanted, &owners, |task| self.start(task));
            self.restorer.metrics.standby_tasks.set(kept as i64);
            super::wait(PASS_INTERVAL, &|| shutdown.is_triggered());
        }
        self.standbys.stop_all();
        self.restorer.metrics.standby_tasks.set(0);
    }

    /// A task's stores worth a replica: those kept on disk (an in-memory store starts empty whatever it had).
    fn persistent_stores(&self, task: &TaskId) -> Vec<StoreSpec> {
        self.topology.stores_of(task.subtopology).into_iter().filter(|s| s.backend == Backend::RocksDb).collect()
    }

    fn start(&self, task: TaskId) -> Result<Replica, StreamError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let (restorer, specs, flag) = (self.restorer.clone(), self.persistent_stores(&task), cancel.clone());
        let registry = self.stores.clone();
        let handle = std::thread::Builder::new()
            .name(format!("standby-{task}"))
            .spawn(move || keep(&restorer, &registry, &specs, task, &flag))
            .map_err(|e| StreamError::Config(format!("cannot start a standby thread: {e}")))?;
        Ok(Replica { cancel, handle })
    }
}

/// Keep task `task`'s stores `specs` at their changelogs' end until `cancel` is set, readable by stale reads
/// through `registry` from the moment they first reach it.
fn keep(restorer: &Restorer, registry: &StoreRegistry, specs: &[StoreSpec], task: TaskId, cancel: &AtomicBool) -> Result<(), StreamError> {
    let consumer: BaseConsumer = restorer.consumer.create().map_err(StreamError::kafka("creating a standby consumer"))?;
    let mut stores: Vec<(String, Arc<dyn KeyValueStore>)> = Vec::new();
    let started = Clock::System.now_ms();
    for spec in specs {
        match restorer.open_restored(&consumer, spec, task.partition, Replay::Standby, cancel)? {
            Some(store) => stores.push((spec.changelog_topic(&restorer.application_id), store)),
            None => return Ok(()),
        }
    }
    let replica = crate::stale::Replica {
        partition: task.partition,
        stores: stores.iter().map(|(_, s)| s.clone()).collect(),
        caught_up_at: Arc::new(AtomicI64::new(started)),
    };
    let caught_up_at = replica.caught_up_at.clone();
    let _readable = Readable::register(registry, task, replica);
    while !super::wait(PASS_INTERVAL, &|| cancel.load(Ordering::Relaxed)) {
        let pass = Clock::System.now_ms();
        for (changelog, store) in &stores {
            if let Restored::StaleCheckpoint { checkpoint, end } =
                restore(&consumer, store.as_ref(), (changelog, task.partition), &restorer.metrics, Replay::Standby, cancel)?
            {
                // The next placement starts the replica again, which rebuilds the store.
                return Err(StreamError::Config(format!("{changelog}[{}] is at {end}, behind the replica's {checkpoint}", task.partition)));
            }
        }
        caught_up_at.store(pass, Ordering::Relaxed);
    }
    Ok(())
}

/// A replica's stores registered for stale reads, until dropped: unregistered before the stores close, so a
/// promotion that opens them next finds no reader holding them.
struct Readable<'a> {
    registry: &'a StoreRegistry,
    task: TaskId,
}

impl<'a> Readable<'a> {
    fn register(registry: &'a StoreRegistry, task: TaskId, replica: crate::stale::Replica) -> Self {
        registry.register_replica(task, replica);
        Readable { registry, task }
    }
}

impl Drop for Readable<'_> {
    fn drop(&mut self) {
        self.registry.unregister_replica(self.task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(of: &[(&str, &[i32])]) -> BTreeMap<TaskId, String> {
        of.iter().flat_map(|(url, ps)| ps.iter().map(move |p| (TaskId::new(0, *p), (*url).to_owned()))).collect()
    }

    #[test]
    fn with_two_instances_and_one_replica_each_keeps_a_replica_of_every_task_of_the_other() {
        let o = owners(&[("http://a", &[0, 2]), ("http://b", &[1, 3])]);
        assert_eq!(placement(&o, "http://a", 1), BTreeSet::from([TaskId::new(0, 1), TaskId::new(0, 3)]));
        assert_eq!(placement(&o, "http://b", 1), BTreeSet::from([TaskId::new(0, 0), TaskId::new(0, 2)]));
        assert!(placement(&o, "http://a", 0).is_empty(), "no replicas asked for, none kept");
    }

    #[test]
    fn every_task_gets_its_replicas_on_other_instances_only() {
        let o = owners(&[("http://a", &[0, 3]), ("http://b", &[1, 4]), ("http://c", &[2, 5])]);
        for replicas in [1, 2, 5] {
            let kept: Vec<BTreeSet<TaskId>> = ["http://a", "http://b", "http://c"].iter().map(|me| placement(&o, me, replicas)).collect();
            for (task, owner) in &o {
                let hosts: Vec<usize> = (0..3).filter(|i| kept[*i].contains(task)).collect();
                assert_eq!(hosts.len(), replicas.min(2), "{task} with {replicas}: {hosts:?}");
                assert!(!hosts.iter().any(|i| ["http://a", "http://b", "http://c"][*i] == owner.as_str()), "never on its owner");
            }
        }
    }

    #[test]
    fn an_instance_that_owns_nothing_yet_keeps_replicas_of_the_owner_before_it() {
        let o = owners(&[("http://a", &[0, 1])]);
        assert_eq!(placement(&o, "http://b", 1), BTreeSet::from([TaskId::new(0, 0), TaskId::new(0, 1)]));
    }
}
