//! The task manager: tasks restored for assigned partitions, committed and closed for revoked ones, closed as they
//! are for lost ones.
//!
//! The rebalance callbacks (`rebalance`) call these. An assigned partition's task first restores its stores on a
//! thread of its own (`state_updater`) with its input paused; the poll loop turns it into a running task once
//! restored ([`Engine::finish_restores`]). A revoked task is committed before it closes; a restoring one is
//! cancelled.

use super::engine::{Engine, GroupConsumer, Slot};
use super::Phase;
use crate::error::StreamError;
use crate::state::LoggedStore;
use crate::task::Task;
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Engine {
    /// Start restoring the tasks of newly assigned partitions, their input paused until they are restored. `handed_over`:
    /// the partitions come from the group (a previous owner's transaction may still be open), not from this
    /// thread's own abort.
    pub(super) fn assign(&self, consumer: &GroupConsumer, partitions: &BTreeSet<i32>, handed_over: bool) -> Result<(), StreamError> {
        let new: BTreeSet<i32> = {
            let state = self.lock();
            partitions.iter().copied().filter(|p| !state.tasks.contains_key(p) && !state.restoring.contains(*p)).collect()
        };
        if !new.is_empty() {
            // Paused before their first fetch: no record reaches a task before its stores are restored.
            consumer.pause(&self.partition_list(&new)).map_err(StreamError::kafka("pausing restoring partitions"))?;
            let mut state = self.lock();
            for &p in &new {
                state.restoring.start(&self.restorer, self.topology.stores(), p, handed_over.then(|| self.partition_list(&[p])))?;
                tracing::info!(partition = p, "task restoring");
            }
        }
        self.update_status();
        self.claim(|owned| owned.extend(partitions.iter().copied()))
    }

    /// Turn the restores that finished into running tasks, and resume their input.
    pub(super) fn finish_restores(&self, consumer: &GroupConsumer) -> Result<(), StreamError> {
        let finished = self.lock().restoring.take_finished();
        if finished.is_empty() {
            return Ok(());
        }
        for (p, restored) in finished {
            let restored = restored?;
            let backends: Vec<_> = restored.iter().map(|(_, backend)| backend.clone()).collect();
            let stores: BTreeMap<String, LoggedStore> = restored
                .into_iter()
                .map(|(spec, backend)| (spec.name.clone(), LoggedStore::new(backend, spec.changelog_topic(self.topology.name()), p)))
                .collect();
            let task = Task::new(self.topology.clone(), p, stores, self.config.task_config(&self.globals, self.input_partitions))?;
            for backend in backends {
                self.stores.register(p, backend);
            }
            self.lock().tasks.insert(p, Slot { task, pending: None, backlog: VecDeque::new(), paused: false });
            consumer.resume(&self.partition_list(&[p])).map_err(StreamError::kafka("resuming a restored task's input"))?;
            tracing::info!(partition = p, "task restored; processing");
        }
        self.update_status();
        Ok(())
    }

    /// The thread's tasks, restoring tasks and phase, for `/readyz` and the metrics.
    fn update_status(&self) {
        let (tasks, restoring) = {
            let state = self.lock();
            (state.tasks.len(), state.restoring.partitions())
        };
        self.status.set_tasks(tasks);
        self.status.set_phase(if restoring.is_empty() { Phase::Running } else { Phase::Restoring });
        self.status.set_restoring(restoring);
        self.metrics.assigned_tasks.set(self.status.runtime().tasks() as i64);
    }

    /// Commit and close the tasks of revoked partitions.
    pub(super) fn revoke(&self, consumer: &GroupConsumer, partitions: &BTreeSet<i32>) -> Result<(), StreamError> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut committed = self.commit(consumer, Some(partitions));
        if let Err(e) = committed {
            // Under exactly-once an aborted transaction is no loss: the next owner processes again from the
            // committed offsets.
            committed = self.recover(consumer, e, partitions);
        }
        self.remove_tasks(partitions);
        self.metrics.revoked_tasks.inc_by(partitions.len() as u64);
        self.claim(|owned| owned.retain(|p| !partitions.contains(p)))?;
        committed
    }

    /// The group dropped this member and gave `partitions` away, possibly already to another: close their tasks
    /// without committing (under exactly-once, abort the transaction, whose offsets would be refused anyway).
    pub(super) fn lose(&self, consumer: &GroupConsumer, partitions: &BTreeSet<i32>) -> Result<(), StreamError> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        tracing::warn!(?partitions, "assignment lost: closing its tasks without committing");
        if self.exactly_once {
            self.abort(consumer, &"the assignment was lost", partitions)?;
        } else {
            self.remove_tasks(partitions);
        }
        self.metrics.revoked_tasks.inc_by(partitions.len() as u64);
        self.claim(|owned| owned.retain(|p| !partitions.contains(p)))
    }

    /// After a failure: close every task without committing and release its stores (so a restarted thread can open
    /// them again); the revocation that closing the consumer triggers then commits nothing either.
    pub(super) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        let all = self.owned_here();
        self.remove_tasks(&all);
        // The thread restarts with nothing, so the instance no longer owns these: a query for one of them must go
        // to whoever owns it now (or wait for this thread to get it back), not be answered from nothing with 404.
        self.owned.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| !all.contains(p));
    }

    /// Close the tasks of `partitions` and forget them, committing nothing; cancel those still restoring.
    pub(super) fn remove_tasks(&self, partitions: &BTreeSet<i32>) {
        let mut guard = self.lock();
        guard.restoring.cancel(partitions);
        for p in partitions {
            if let Some(mut slot) = guard.tasks.remove(p) {
                slot.task.close();
                for s in slot.task.stores() {
                    self.stores.unregister(s.name(), *p);
                }
                tracing::info!(partition = p, "task closed");
            }
            guard.committed.retain(|(_, cp), _| cp != p);
        }
        drop(guard);
        self.update_status();
    }

    pub(super) fn close_all(&self) {
        let closed = self.owned_here();
        self.remove_tasks(&closed);
        // Released on a clean stop, so queries go straight to the next owner.
        if let Err(e) = self.claim(|owned| owned.retain(|p| !closed.contains(p))) {
            tracing::warn!(error = %e, "could not release the partitions' ownership");
        }
        let finished = if self.exactly_once {
            // A new (empty) transaction after it, for the revocation that closing the consumer triggers.
            self.producer
                .commit_transaction(Duration::from_secs(5))
                .and_then(|()| self.producer.begin_transaction())
                .map_err(|e| e.to_string())
        } else {
            self.producer.flush(Duration::from_secs(5)).map_err(|e| e.to_string())
        };
        if let Err(e) = finished {
            tracing::warn!(error = %e, "the last records (the ownership release) were not confirmed");
        }
    }
}
