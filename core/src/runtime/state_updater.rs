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
use crate::task_id::TaskId;
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

/// The restores one stream thread has in progress, by task.
#[derive(Default)]
pub(super) struct StateUpdater {
    jobs: BTreeMap<TaskId, Job>,
}

impl StateUpdater {
    /// Start restoring the stores `specs` of task `task`. `sources` are the task's input
    /// partitions: a previous owner may have left a transaction open on them, so under exactly-once their
    /// committed offsets must be stable before the changelogs are read.
    pub(super) fn start(
        &mut self,
        restorer: &Restorer,
        specs: Vec<StoreSpec>,
        task: TaskId,
        sources: TopicPartitionList,
    ) -> Result<(), StreamError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let (restorer, flag) = (restorer.clone(), cancel.clone());
        let handle = std::thread::Builder::new()
            .name(format!("restore-{task}"))
            .spawn(move || restorer.restore_task(&specs, task.partition, &sources, &flag))
            .map_err(|e| StreamError::Config(format!("cannot start a restore thread: {e}")))?;
        self.jobs.insert(task, Job { cancel, handle });
        Ok(())
    }

    /// Whether task `task` is restoring.
    pub(super) fn contains(&self, task: &TaskId) -> bool {
        self.jobs.contains_key(task)
    }

    /// The tasks restoring.
    pub(super) fn tasks(&self) -> BTreeSet<TaskId> {
        self.jobs.keys().copied().collect()
    }

    /// The restores that ended, with their stores or their failure.
    pub(super) fn take_finished(&mut self) -> Vec<(TaskId, Result<TaskStores, StreamError>)> {
        let done: Vec<TaskId> = self.jobs.iter().filter(|(_, j)| j.handle.is_finished()).map(|(p, _)| *p).collect();
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

    /// Stop the restores of `tasks` and wait until their stores are closed.
    pub(super) fn cancel(&mut self, tasks: &BTreeSet<TaskId>) {
        let jobs: Vec<(TaskId, Job)> = tasks.iter().filter_map(|t| self.jobs.remove(t).map(|j| (*t, j))).collect();
        for (_, job) in &jobs {
            job.cancel.store(true, Ordering::SeqCst);
        }
        for (task, job) in jobs {
            match join(job) {
                Ok(_) => tracing::info!(%task, "restore cancelled"),
                Err(e) => tracing::warn!(%task, error = %e, "restore failed before it was cancelled"),
            }
        }
    }
}

impl Drop for StateUpdater {
    fn drop(&mut self) {
        let all = self.tasks();
        self.cancel(&all);
    }
}

fn join(job: Job) -> Result<Option<TaskStores>, StreamError> {
    job.handle.join().unwrap_or_else(|_| Err(StreamError::Config("a restore thread panicked".into())))
}
