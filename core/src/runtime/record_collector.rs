//! The record collector: what tasks produce, sent to the stream thread's producer and tracked to its input.
//!
//! Every output carries, as its delivery opaque, the index of the input that caused it, so a refusal by the broker
//! can be pinned on that input (see `refusal`); a commit waits for every acknowledgement first.

use super::acks;
use super::delivery;
use super::engine::Engine;
use crate::error::StreamError;
use crate::record::{OutgoingRecord, SourcePosition};
use crate::window::aggregate::LATE_OPERATOR_HEADER;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Engine {
    /// Index `position` among the inputs since the last commit: its outputs' delivery opaque.
    pub(super) fn origin(&self, position: &SourcePosition) -> usize {
        let mut origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        origins.push(position.clone());
        origins.len() - 1
    }

    /// Send `r`, caused by the input at index `origin` of `origins` (or [`NO_ORIGIN`](delivery::NO_ORIGIN)).
    pub(super) fn send(&self, r: OutgoingRecord, origin: usize) -> Result<(), StreamError> {
        let mut record: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(&r.topic, origin);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        if !r.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header { key: k, value: Some(v) });
            }
            record = record.headers(headers);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(StreamError::Kafka { context: format!("producing to {}", r.topic), source: e }),
            }
        }
        self.produced.inc(&r.topic);
        if r.topic == self.late_topic {
            let operator = r.headers.iter().find(|(k, _)| k == LATE_OPERATOR_HEADER).map(|(_, v)| String::from_utf8_lossy(v));
            self.metrics.late.with_label_values(&[operator.as_deref().unwrap_or("unknown")]).inc();
        }
        Ok(())
    }

    /// Wait until every record sent so far is acknowledged; any delivery failure fails the wait. A refusal the
    /// broker would repeat is pinned on its input first, and asks for a rewind (see `refusal`).
    pub(super) fn await_acks(&self) -> Result<(), StreamError> {
        acks::await_all(&self.producer, Duration::from_secs(120)).map_err(StreamError::kafka("waiting for acknowledgements"))?;
        let failures = self.producer.context().take_failures();
        self.pin_refusals(&failures);
        match failures.all.first() {
            None => Ok(()),
            Some(first) if failures.all.len() == 1 => Err(StreamError::Delivery(first.clone())),
            Some(first) => Err(StreamError::Delivery(format!("{} records, the first {first}", failures.all.len()))),
        }
    }

    /// Pin each refusal the broker would repeat on the input that caused it, and ask for a rewind.
    pub(super) fn pin_refusals(&self, failures: &delivery::Failures) {
        if failures.refused.is_empty() {
            return;
        }
        let origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        let mut pinned = BTreeSet::new();
        for (origin, reason) in &failures.refused {
            if let Some(position) = origins.get(*origin).filter(|_| pinned.insert(*origin)) {
                tracing::warn!(?position, %reason, "the broker refused an output of this input");
                self.refusals.refused(position, reason);
            }
        }
        self.rewind_requested.store(true, Ordering::SeqCst);
    }
}

/// Tasks write straight into the producer.
///
/// A processor flushes to make its writes durable before a side effect goes further (the mailer's "sent"
/// record). Acknowledged is durable under at-least-once; under exactly-once a write counts only once its
/// transaction commits, so there a flush asks for a commit right after the record in hand instead (waiting for
/// acknowledgements first would buy nothing: the commit waits for them).
///
/// Each record sent carries `origin`, the index of the input that caused it (see `refusal`).
pub(super) struct ProducerSink<'a> {
    pub(super) engine: &'a Engine,
    pub(super) origin: usize,
}

impl crate::processor::RecordSink for ProducerSink<'_> {
    fn send(&mut self, record: OutgoingRecord) -> Result<(), StreamError> {
        self.engine.send(record, self.origin)
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        if self.engine.exactly_once {
            self.engine.commit_requested.store(true, Ordering::SeqCst);
            Ok(())
        } else {
            self.engine.await_acks()
        }
    }
}
