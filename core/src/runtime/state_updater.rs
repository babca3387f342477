//! Restoring as a phase of its own: a newly assigned task's stores are restored on a thread of their own while
//! the stream thread's running tasks keep processing (Kafka Streams calls this part the state updater).
//!
//! The rebalance callback only starts a restore and pauses the task's input partitions (`task_manager`); it
//! returns at once, so a restore, however long, cannot hold up the other tasks, let their open transaction pass
//! its timeout, or cost the member its place in the group by missing `max.poll.interval.ms`. The poll loop picks
//! finished restores up ([`StateUpdater::take_finished`]), turns each into a task and resumes its partitions: a task
//! processes input only once its stores are at their changelogs' end.
//!
//! A task revoked (or lost) while it restores is cancelled: the restore stops within one poll of its changelog and
//! closes its stores before the revocation returns, so the next owner can open them.

use super::restore::{Restorer, TaskStores};
use crate::error::StreamError;
use crate::state::StoreSpec;
use rdkafka::TopicPartitionList;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A restore in progress.
struct Job {
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<Result<Option<TaskStores>, StreamError>>,
}

/// The restores one stream thread has in progress, by partition.
#[derive(Default)]
pub(super) struct StateUpdater {
    jobs: BTreeMap<i32, Job>,
}

impl StateUpdater {
    /// Start restoring the stores `specs` of partition `partition`'s task. `sources` are the task's input
    /// partitions when a previous owner may have left a transaction open: under exactly-once their committed
    /// offsets must be stable before the changelogs are read.
    pub(super) fn start(
        &mut self,
        restorer: &Restorer,
        specs: &[StoreSpec],
        partition: i32,
        sources: Option<TopicPartitionList>,
    ) -> Result<(), StreamError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let (restorer, specs, flag) = (restorer.clone(), specs.to_vec(), cancel.clone());
        let handle = std::thread::Builder::new()
            .name(format!("restore-{partition}"))
            .spawn(move || restorer.restore_task(&specs, partition, sources.as_ref(), &flag))
            .map_err(|e| StreamError::Config(format!("cannot start a restore thread: {e}")))?;
        self.jobs.insert(partition, Job { cancel, handle });
        Ok(())
    }

    /// Whether `partition`'s task is restoring.
    pub(super) fn contains(&self, partition: i32) -> bool {
        self.jobs.contains_key(&partition)
    }

    /// The partitions whose tasks are restoring.
    pub(super) fn partitions(&self) -> BTreeSet<i32> {
        self.jobs.keys().copied().collect()
    }

    /// The restores that ended, with their stores or their failure.
    pub(super) fn take_finished(&mut self) -> Vec<(i32, Result<TaskStores, StreamError>)> {
        let done: Vec<i32> = self.jobs.iter().filter(|(_, j)| j.handle.is_finished()).map(|(p, _)| *p).collect();
        let mut finished = Vec::new();
        for p in done {
            if let Some(job) = self.jobs.remove(&p) {
                match join(job) {
                    Ok(Some(stores)) => finished.push((p, Ok(stores))),
                    // Only a cancel stops a restore without a result, and a cancelled job is no longer here.
                    Ok(None) => {}
                    Err(e) => finished.push((p, Err(e))),
                }
            }
        }
        finished
    }

    /// Stop the restores of `partitions` and wait until their stores are closed.
    pub(super) fn cancel(&mut self, partitions: &BTreeSet<i32>) {
        let jobs: Vec<(i32, Job)> = partitions.iter().filter_map(|p| self.jobs.remove(p).map(|j| (*p, j))).collect();
        for (_, job) in &jobs {
            job.cancel.store(true, Ordering::SeqCst);
        }
        for (partition, job) in jobs {
            match join(job) {
                Ok(_) => tracing::info!(partition, "restore cancelled"),
                Err(e) => tracing::warn!(partition, error = %e, "restore failed before it was cancelled"),
            }
        }
    }
}

impl Drop for StateUpdater {
    fn drop(&mut self) {
        let all = self.partitions();
        self.cancel(&all);
    }
}

fn join(job: Job) -> Result<Option<TaskStores>, StreamError> {
    job.handle.join().unwrap_or_else(|_| Err(StreamError::Config("a restore thread panicked".into())))
}
