//! The task manager: tasks restored when assigned, committed and closed when revoked, closed as they are when lost.
//!
//! The rebalance callbacks (`rebalance`) call these. An assigned task first restores its stores on a
//! thread of its own (`state_updater`) with its input paused; the poll loop turns it into a running task once
//! restored ([`Engine::finish_restores`]). A revoked task is committed before it closes; a restoring one is
//! cancelled.

use super::acks;
use super::engine::{Engine, GroupConsumer, Slot};
use super::Phase;
use crate::error::StreamError;
use crate::state::LoggedStore;
use crate::task::Task;
use crate::task_id::TaskId;
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Engine {
    /// Start restoring newly assigned tasks, their input paused until they are restored; none while the thread
    /// leaves the group (a rebalance can still hand it partitions then, which it gives back at once).
    pub(super) fn assign(&self, consumer: &GroupConsumer, tasks: &BTreeSet<TaskId>) -> Result<(), StreamError> {
        if self.leaving.load(Ordering::SeqCst) {
            return Ok(());
        }
        let new: BTreeSet<TaskId> = {
            let state = self.lock();
            tasks.iter().copied().filter(|t| !state.tasks.contains_key(t) && !state.restoring.contains(t)).collect()
        };
        if !new.is_empty() {
            // Paused before their first fetch: no record reaches a task before its stores are restored.
            consumer.pause(&self.partition_list(&new)).map_err(StreamError::kafka("pausing restoring tasks' input"))?;
            // A replica kept here closes its stores first; the restore goes on from where it stood.
            self.standbys.promote(&new);
            let mut state = self.lock();
            for &task in &new {
                let specs = self.topology.stores_of(task.subtopology);
                state.restoring.start(&self.restorer, specs, task, self.partition_list(&[task]))?;
                tracing::info!(%task, "task restoring");
            }
        }
        self.update_status();
        self.claim(|owned| owned.extend(tasks.iter().copied()))
    }

    /// Turn the restores that finished into running tasks, and resume their input.
    pub(super) fn finish_restores(&self, consumer: &GroupConsumer) -> Result<(), StreamError> {
        let finished = self.lock().restoring.take_finished();
        if finished.is_empty() {
            return Ok(());
        }
        for (id, restored) in finished {
            let restored = restored?;
            let backends: Vec<_> = restored.iter().map(|(_, backend)| backend.clone()).collect();
            let stores: BTreeMap<String, LoggedStore> = restored
                .into_iter()
                .map(|(spec, backend)| {
                    (spec.name.clone(), LoggedStore::new(backend, spec.changelog_topic(self.topology.name()), id.partition))
                })
                .collect();
            let config = self.config.task_config(&self.globals, self.partitions.of_subtopology(id.subtopology));
            let task = Task::new(self.topology.clone(), id, stores, config)?;
            for backend in backends {
                self.stores.register(id.partition, backend);
            }
            self.lock().tasks.insert(id, Slot { task, pending: None, backlog: VecDeque::new(), paused: false });
            consumer.resume(&self.partition_list(&[id])).map_err(StreamError::kafka("resuming a restored task's input"))?;
            tracing::info!(task = %id, "task restored; processing");
        }
        self.update_status();
        Ok(())
    }

    /// Start the running tasks `tasks` over on what their stores committed, after going back to the last
    /// commit (`Engine::abort`): in this thread and at once, since a backend never holds uncommitted writes, so there
    /// is nothing to restore. Inputs paused for a retry resume: the retried record is read again.
    pub(super) fn restart_tasks(&self, consumer: &GroupConsumer, tasks: &BTreeSet<TaskId>) -> Result<(), StreamError> {
        let mut paused = BTreeSet::new();
        {
            let mut state = self.lock();
            for id in tasks {
                let Some(slot) = state.tasks.remove(id) else { continue };
                if slot.paused {
                    paused.insert(*id);
                }
                let task = slot.task.restarted()?;
                state.tasks.insert(*id, Slot { task, pending: None, backlog: VecDeque::new(), paused: false });
            }
        }
        if !paused.is_empty() {
            consumer.resume(&self.partition_list(&paused)).map_err(StreamError::kafka("resuming restarted tasks' input"))?;
        }
        let names: Vec<String> = tasks.iter().map(TaskId::to_string).collect();
        tracing::info!(tasks = ?names, "tasks started over on their committed state");
        Ok(())
    }

    /// The thread's tasks, restoring tasks and phase, for `/readyz` and the metrics.
    fn update_status(&self) {
        let (active, restoring) = {
            let state = self.lock();
            (state.tasks.keys().copied().collect(), state.restoring.tasks())
        };
        self.status.set_phase(if restoring.is_empty() { Phase::Running } else { Phase::Restoring });
        self.status.set_tasks(active, restoring);
        self.metrics.assigned_tasks.set(self.status.runtime().tasks() as i64);
    }

    /// Commit and close revoked tasks.
    pub(super) fn revoke(&self, consumer: &GroupConsumer, tasks: &BTreeSet<TaskId>) -> Result<(), StreamError> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut committed = self.commit(consumer, Some(tasks));
        if let Err(e) = committed {
            // Under exactly-once an aborted transaction is no loss: the next owner processes again from the
            // committed offsets.
            committed = self.recover(consumer, e, tasks);
        }
        self.remove_tasks(tasks);
        self.metrics.revoked_tasks.inc_by(tasks.len() as u64);
        self.claim(|owned| owned.retain(|t| !tasks.contains(t)))?;
        committed
    }

    /// The group dropped this member and gave `tasks` away, possibly already to another: close them without
    /// committing (under exactly-once, abort the transaction, whose offsets would be refused anyway).
    pub(super) fn lose(&self, consumer: &GroupConsumer, tasks: &BTreeSet<TaskId>) -> Result<(), StreamError> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let names: Vec<String> = tasks.iter().map(TaskId::to_string).collect();
        tracing::warn!(tasks = ?names, "assignment lost: closing its tasks without committing");
        if self.exactly_once {
            self.abort(consumer, &"the assignment was lost", tasks)?;
        } else {
            self.remove_tasks(tasks);
        }
        self.metrics.revoked_tasks.inc_by(tasks.len() as u64);
        self.claim(|owned| owned.retain(|t| !tasks.contains(t)))
    }

    /// After a failure: close every task without committing and release its stores (so a restarted thread can open
    /// them again); the revocation that closing the consumer triggers then commits nothing either.
    pub(super) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        let all = self.owned_here();
        self.remove_tasks(&all);
        // The thread restarts with nothing, so the instance no longer owns these: a query for one of them must go
        // to whoever owns it now (or wait for this thread to get it back), not be answered from nothing with 404.
        self.owned.lock().unwrap_or_else(|p| p.into_inner()).retain(|t| !all.contains(t));
    }

    /// Close `tasks` and forget them, committing nothing; cancel those still restoring.
    pub(super) fn remove_tasks(&self, tasks: &BTreeSet<TaskId>) {
        let mut guard = self.lock();
        guard.restoring.cancel(tasks);
        for id in tasks {
            if let Some(mut slot) = guard.tasks.remove(id) {
                slot.task.close();
                for s in slot.task.stores() {
                    self.stores.unregister(s.name(), id.partition);
                }
                tracing::info!(task = %id, "task closed");
            }
            let sources = self.topology.sources_of(id.subtopology);
            guard.committed.retain(|(topic, p), _| !(*p == id.partition && sources.contains(&topic.as_str())));
        }
        drop(guard);
        self.standbys.demote(tasks);
        self.update_status();
    }

    pub(super) fn close_all(&self) {
        let closed = self.owned_here();
        self.remove_tasks(&closed);
        // Released on a clean stop, so queries go straight to the next owner.
        if let Err(e) = self.claim(|owned| owned.retain(|t| !closed.contains(t))) {
            tracing::warn!(error = %e, "could not release the partitions' ownership");
        }
        let finished = if self.exactly_once {
            // A new (empty) transaction after it, for the revocation that closing the consumer triggers.
            self.producer
                .commit_transaction(Duration::from_secs(5))
                .and_then(|()| self.producer.begin_transaction())
                .map_err(|e| e.to_string())
        } else {
            acks::await_all(&self.producer, Duration::from_secs(5)).map_err(|e| e.to_string())
        };
        if let Err(e) = finished {
            tracing::warn!(error = %e, "the last records (the ownership release) were not confirmed");
        }
    }
}
