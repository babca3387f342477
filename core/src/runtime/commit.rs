//! The commit protocol, and going back to the last commit when a step fails.
//!
//! On the commit interval, on revocation and on shutdown a stream thread commits, in the order that keeps every
//! guarantee (invariants 1-2, docs/src/invariants.md):
//!
//! 1. send the stores' coalesced changelog writes, flush the producer and check that every record was
//!    acknowledged;
//! 2. commit the input offsets those records came from;
//! 3. apply each store's pending batch with the changelog offset it reached (its checkpoint).
//!
//! Under exactly-once ([`Guarantee::ExactlyOnce`](super::Guarantee::ExactlyOnce)) steps 1 and 2 are one Kafka
//! transaction instead: see [`guarantee`] for how it commits, aborts and fences.

use super::acks;
use super::delivery::NO_ORIGIN;
use super::engine::{Engine, EngineState, GroupConsumer};
use super::guarantee::{self, Recovery, CALL_TIMEOUT};
use super::record_collector::ProducerSink;
use crate::error::StreamError;
use crate::task_id::TaskId;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{Producer, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Engine {
    /// The commit protocol (see the module docs), for all tasks or only `only`.
    pub(super) fn commit(&self, consumer: &GroupConsumer, only: Option<&BTreeSet<TaskId>>) -> Result<(), StreamError> {
        let started = Instant::now();
        let phases = &self.metrics.commit_phases;
        let mut step_started = started;
        let mut step_done = |phase: &prometheus::Histogram| {
            let now = Instant::now();
            phase.observe((now - step_started).as_secs_f64());
            step_started = now;
        };
        // One transaction holds every task's writes, so it commits them all or none.
        let only = if self.exactly_once { None } else { only };
        let selected = |t: &TaskId| only.is_none_or(|o| o.contains(t));
        if !self.exactly_once {
            // Outputs first: a refusal found now is rewound (see `refusal`) before the changelogs hold the writes
            // of the records it rewinds, which a rebuilt task would restore and then count again. Under
            // exactly-once those writes would be aborted with the transaction anyway.
            self.await_acks()?;
            step_done(&phases.outputs_acked);
        }
        for (_, slot) in self.lock().tasks.iter_mut().filter(|(p, _)| selected(p)) {
            slot.task.drain_changelogs(&mut ProducerSink { engine: self, origin: NO_ORIGIN })?;
        }
        step_done(&phases.changelogs_sent);
        self.await_acks()?;
        step_done(&phases.changelogs_acked);
        // Every record sent so far is acknowledged: no delivery report will name these inputs any more.
        self.origins.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut guard = self.lock();
        let EngineState { tasks, committed, .. } = &mut *guard;
        let mut tpl = TopicPartitionList::new();
        let mut advanced = Vec::new();
        for (id, slot) in tasks.iter().filter(|(id, _)| selected(id)) {
            for (topic, &offset) in slot.task.consumed() {
                let key = (topic.clone(), id.partition);
                if committed.get(&key) != Some(&offset) {
                    tpl.add_partition_offset(topic, id.partition, Offset::Offset(offset))
                        .map_err(StreamError::kafka("building the commit"))?;
                    advanced.push((key, offset));
                }
            }
        }
        if self.exactly_once {
            if tpl.count() > 0 {
                let group = consumer.group_metadata().ok_or_else(|| StreamError::Config("no consumer group metadata".into()))?;
                self.producer
                    .send_offsets_to_transaction(&tpl, &group, CALL_TIMEOUT)
                    .map_err(StreamError::kafka("adding the offsets to the transaction"))?;
            }
            self.producer.commit_transaction(CALL_TIMEOUT).map_err(StreamError::kafka("committing the transaction"))?;
            self.forget_refusals(&advanced);
            committed.extend(advanced);
            self.producer.begin_transaction().map_err(StreamError::kafka("beginning a transaction"))?;
        } else if tpl.count() > 0 {
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    self.forget_refusals(&advanced);
                    committed.extend(advanced);
                }
                // Cooperative rebalancing keeps tasks processing while the group rebalances, and the coordinator
                // refuses plain offset commits in that window: while the member waits for the new generation
                // (rebalance in progress), or when the commit left just before the member learnt it (illegal
                // generation, unknown member). Nothing is lost by waiting: the next commit carries these offsets,
                // and the stores keep their pending batches until then. A member the group really dropped hears
                // so on its next heartbeat, and its assignment is reported lost (`rebalance`), closing the tasks
                // uncommitted.
                Err(KafkaError::ConsumerCommit(
                    code
                    @ (RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration | RDKafkaErrorCode::UnknownMemberId),
                )) => {
                    tracing::info!(%code, "offsets not committed: the group is rebalancing; the next commit carries them");
                    return Ok(());
                }
                Err(e) => return Err(StreamError::Kafka { context: "committing offsets".into(), source: e }),
            }
        }
        step_done(&phases.offsets_committed);
        let tracker = self.producer.context();
        for (id, slot) in tasks.iter_mut().filter(|(id, _)| selected(id)) {
            slot.task.commit_stores(|changelog| tracker.next_offset(changelog, id.partition))?;
        }
        step_done(&phases.stores_applied);
        self.metrics.commit_latency.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Committed past these: their refusals are history.
    pub(super) fn forget_refusals(&self, advanced: &[((String, i32), i64)]) {
        for ((topic, partition), next) in advanced {
            self.refusals.committed(topic, *partition, *next);
        }
    }

    /// Get past a failed step: under exactly-once, abort or retry as [`guarantee::recovery`] says; anything else
    /// (and every error under at-least-once) stops the thread. The tasks `leaving` (being revoked) are not started
    /// over after an abort.
    pub(super) fn recover(&self, consumer: &GroupConsumer, e: StreamError, leaving: &BTreeSet<TaskId>) -> Result<(), StreamError> {
        if self.rewind_requested.swap(false, Ordering::SeqCst) && matches!(e, StreamError::Delivery(_)) {
            // A refusal pinned on an input: go back and process the suspect alone (see `refusal`).
            return self.abort(consumer, &e, leaving);
        }
        if !self.exactly_once {
            return Err(e);
        }
        let mut e = e;
        for attempt in 1..=5 {
            match guarantee::recovery(&e) {
                Recovery::Abort => return self.abort(consumer, &e, leaving),
                Recovery::Retry => {
                    tracing::warn!(error = %e, attempt, "commit outcome unknown; retrying it");
                    match self.commit(consumer, None) {
                        Ok(()) => return Ok(()),
                        Err(again) => e = again,
                    }
                }
                Recovery::Rejoin => return Err(e),
            }
        }
        Err(e)
    }

    /// Go back to the last commit: under exactly-once, abort the open transaction; every running task starts over
    /// on its stores (which never saw the uncommitted writes, so nothing is restored) and the consumer is sought
    /// back to the committed offsets.
    /// Under at-least-once the outputs already acknowledged stay, and are written again (a rewind after a refusal).
    pub(super) fn abort(
        &self,
        consumer: &GroupConsumer,
        cause: &dyn std::fmt::Display,
        leaving: &BTreeSet<TaskId>,
    ) -> Result<(), StreamError> {
        tracing::warn!(error = %cause, "going back to the last commit; processing again from the committed offsets");
        if self.exactly_once {
            // What is still queued can only be aborted: purged, its delivery reports served here (librdkafka's abort
            // cannot serve them itself, as the client polls its own event queue), and what is in flight awaited, so
            // that the abort finds nothing outstanding. Those reports name their inputs: a refusal that caused this
            // abort is pinned (later sends fail only with the transaction's state).
            self.producer.purge(PurgeConfig::default().queue());
            if let Err(e) = acks::await_all(&self.producer, CALL_TIMEOUT) {
                tracing::debug!(error = %e, "records still outstanding before the abort");
            }
            self.pin_refusals(&self.producer.context().take_failures());
            self.producer.abort_transaction(CALL_TIMEOUT).map_err(StreamError::kafka("aborting the transaction"))?;
            self.metrics.aborted_transactions.inc();
        } else {
            acks::await_all(&self.producer, CALL_TIMEOUT).map_err(StreamError::kafka("waiting for acknowledgements"))?;
        }
        self.pin_refusals(&self.producer.context().take_failures());
        self.rewind_requested.store(false, Ordering::SeqCst);
        self.origins.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if self.exactly_once {
            self.producer.begin_transaction().map_err(StreamError::kafka("beginning a transaction"))?;
        }
        // Tasks still restoring processed nothing: the abort leaves them be.
        self.remove_tasks(leaving);
        let running: BTreeSet<TaskId> = self.lock().tasks.keys().copied().filter(|t| !leaving.contains(t)).collect();
        if running.is_empty() {
            return Ok(());
        }
        let committed = consumer
            .committed_offsets(self.partition_list(&running), CALL_TIMEOUT)
            .map_err(StreamError::kafka("reading the committed offsets"))?;
        let mut rewind = TopicPartitionList::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            rewind.add_partition_offset(e.topic(), e.partition(), offset).map_err(StreamError::kafka("building the rewind"))?;
        }
        consumer.seek_partitions(rewind, CALL_TIMEOUT).map_err(StreamError::kafka("seeking to the committed offsets"))?;
        self.restart_tasks(consumer, &running)
    }
}
