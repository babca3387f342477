//! The task executor: each polled record through its task, and the retries of records that failed transiently.
//!
//! A processor that reports a transient failure ([`ProcessError::Retry`](crate::ProcessError::Retry)) pauses its
//! partition: the record is retried with exponential backoff, later records wait behind it, and no offset is
//! committed past it. The consumer keeps polling meanwhile, so the instance stays in the group.

use super::delivery::NO_ORIGIN;
use super::engine::{Engine, EngineState, GroupConsumer, Pending, Slot};
use super::guarantee::CALL_TIMEOUT;
use super::record_collector::ProducerSink;
use super::refusal;
use crate::error::StreamError;
use crate::record::InputRecord;
use crate::task::Outcome;
use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use std::time::{Duration, Instant};

/// One record in this many has its processing time measured.
const LATENCY_SAMPLE: i64 = 64;

impl Engine {
    pub(super) fn handle(&self, consumer: &GroupConsumer, input: InputRecord) -> Result<(), StreamError> {
        let mut guard = self.lock();
        let EngineState { tasks, restoring, .. } = &mut *guard;
        let position = &input.position;
        let Some(id) = self.task_of(&position.topic, position.partition) else {
            return Err(StreamError::Config(format!("no source of the topology reads {}, yet the consumer polled it", position.topic)));
        };
        if restoring.contains(&id) {
            // Paused when assigned, so only a fetch that was under way can bring one: read it again once restored.
            tracing::debug!(?position, "record for a restoring task; it is read again once the task runs");
            consumer
                .seek(&position.topic, position.partition, Offset::Offset(position.offset), CALL_TIMEOUT)
                .map_err(StreamError::kafka("seeking back a restoring task's input"))?;
            return consumer.pause(&self.partition_list(&[id])).map_err(StreamError::kafka("pausing"));
        }
        self.consumed.inc(&input.position.topic);
        let Some(slot) = tasks.get_mut(&id) else {
            tracing::warn!(position = ?input.position, task = %id, "record for a task not here; it will be redelivered to its owner");
            return Ok(());
        };
        if slot.pending.is_some() || !slot.backlog.is_empty() {
            slot.backlog.push_back(input);
            return Ok(());
        }
        self.run_record(consumer, slot, input, 0).map(|_| ())
    }

    /// Processes one record and sends what it produced. Returns false when the record must be retried.
    pub(super) fn run_record(
        &self,
        consumer: &GroupConsumer,
        slot: &mut Slot,
        input: InputRecord,
        attempts: u32,
    ) -> Result<bool, StreamError> {
        let verdict = self.refusals.verdict(&input.position);
        let alone = verdict == refusal::Verdict::Alone;
        let mut sink = ProducerSink { engine: self, origin: self.origin(&input.position) };
        match verdict {
            refusal::Verdict::Process => {}
            // Alone: what came before is acknowledged first, so a refusal now is this record's own.
            refusal::Verdict::Alone => self.await_acks()?,
            refusal::Verdict::DeadLetter(reason) => {
                slot.task.refuse(&input, &reason, &mut sink)?;
                if self.refusals.first_dead_letter(&input.position) {
                    self.metrics.dead_lettered.with_label_values(&[&input.position.topic]).inc();
                    self.metrics.refused.with_label_values(&[&input.position.topic]).inc();
                }
                tracing::warn!(position = ?input.position, %reason, "dead-lettered: the broker keeps refusing its output");
                return Ok(true);
            }
            refusal::Verdict::Stuck(reason) => {
                return Err(StreamError::Config(format!(
                    "the dead-letter topic {} refused the dead letter of {}[{}]@{} as well ({reason}): check its max.message.bytes \
                     and timestamp settings",
                    self.config.dead_letter_topic(),
                    input.position.topic,
                    input.position.partition,
                    input.position.offset
                )))
            }
        }
        // Time one record in LATENCY_SAMPLE: reading the clock for every record costs more than the figure is worth.
        let sampled = input.position.offset % LATENCY_SAMPLE == 0;
        let started = sampled.then(Instant::now);
        let outcome = slot.task.process(&input, &mut sink)?;
        if let Some(started) = started {
            self.metrics.process_latency.observe(started.elapsed().as_secs_f64());
        }
        if alone {
            self.await_acks()?;
            self.refusals.cleared(&input.position);
        }
        match outcome {
            Outcome::Processed => Ok(true),
            Outcome::DeadLettered(reason) => {
                self.metrics.dead_lettered.with_label_values(&[&input.position.topic]).inc();
                tracing::warn!(position = ?input.position, %reason, "dead-lettered");
                Ok(true)
            }
            Outcome::Retry(reason) => {
                let attempts = attempts + 1;
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempts.min(16))).min(self.config.max_retry_backoff);
                self.metrics.retried.with_label_values(&[&input.position.topic]).inc();
                tracing::warn!(position = ?input.position, %reason, attempts, ?backoff, "transient failure; will retry");
                if !slot.paused {
                    consumer.pause(&self.partition_list(&[slot.task.id()])).map_err(StreamError::kafka("pausing"))?;
                    slot.paused = true;
                }
                slot.pending = Some(Pending { input, attempts, retry_at: Instant::now() + backoff });
                Ok(false)
            }
        }
    }

    pub(super) fn retry_due(&self, consumer: &GroupConsumer) -> Result<(), StreamError> {
        let now = Instant::now();
        let mut guard = self.lock();
        let EngineState { tasks, .. } = &mut *guard;
        for slot in tasks.values_mut() {
            if slot.pending.as_ref().is_none_or(|p| p.retry_at > now) {
                continue;
            }
            let Some(Pending { input, attempts, .. }) = slot.pending.take() else { continue };
            if !self.run_record(consumer, slot, input, attempts)? {
                continue;
            }
            while let Some(next) = slot.backlog.pop_front() {
                if !self.run_record(consumer, slot, next, 0)? {
                    break;
                }
            }
            if slot.pending.is_none() && slot.paused {
                consumer.resume(&self.partition_list(&[slot.task.id()])).map_err(StreamError::kafka("resuming"))?;
                slot.paused = false;
            }
        }
        Ok(())
    }

    /// Processing-time hooks of every task that is not waiting on a retry (its state must not move meanwhile).
    pub(super) fn punctuate(&self) -> Result<(), StreamError> {
        let mut guard = self.lock();
        for slot in guard.tasks.values_mut().filter(|s| s.pending.is_none()) {
            slot.task.punctuate(&mut ProducerSink { engine: self, origin: NO_ORIGIN })?;
        }
        Ok(())
    }
}
