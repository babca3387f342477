//! Delivery tracking: the producer's acknowledgements, as the commit protocol needs them.
//!
//! Offsets may only move once every record they caused is acknowledged (invariant 1, docs/src/invariants.md), and a
//! store's checkpoint may only claim changelog offsets the broker acknowledged (invariant 2, docs/src/invariants.md).
//! So the tracker remembers, per changelog partition, the highest acknowledged offset, and keeps every delivery failure
//! until the next commit looks.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::Mutex;

/// The producer's context: counts acknowledgements and failures.
pub(crate) struct DeliveryTracker {
    /// changelog topic -> partition -> highest acknowledged offset.
    acked: Mutex<HashMap<String, HashMap<i32, i64>>>,
    failures: Mutex<Failures>,
}

/// The delivery opaque of a record no single input caused (changelog writes, punctuation outputs).
pub(crate) const NO_ORIGIN: usize = usize::MAX;

/// Delivery failures since the last look.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    /// Every failure, described.
    pub(crate) all: Vec<String>,
    /// The refusals the broker would repeat, as (the causing input's index, the broker's reason).
    pub(crate) refused: Vec<(usize, String)>,
}

/// Whether the broker refused the record itself, so that sending it again can only fail again: too large for the
/// topic, a timestamp outside its bounds, a record its validation rejects.
fn is_refusal(err: &KafkaError) -> bool {
    matches!(
        err,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidTimestamp
                | RDKafkaErrorCode::UnsupportedForMessageFormat
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

impl DeliveryTracker {
    pub(crate) fn new(changelog_topics: impl IntoIterator<Item = String>) -> Self {
        let acked = changelog_topics.into_iter().map(|t| (t, HashMap::new())).collect();
        DeliveryTracker { acked: Mutex::new(acked), failures: Mutex::default() }
    }

    /// The changelog offset a restore of `(topic, partition)` would resume from: one past the last acknowledged.
    pub(crate) fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        acked.get(topic)?.get(&partition).map(|o| o + 1)
    }

    /// Failures since the last call.
    pub(crate) fn take_failures(&self) -> Failures {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, origin: usize) {
        match result {
            Ok(msg) => {
                let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(parts) = acked.get_mut(msg.topic()) {
                    let slot = parts.entry(msg.partition()).or_insert(msg.offset());
                    *slot = (*slot).max(msg.offset());
                }
            }
            Err((err, msg)) => {
                let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                if origin != NO_ORIGIN && is_refusal(err) {
                    failures.refused.push((origin, format!("{} refused it: {err}", msg.topic())));
                }
                failures.all.push(format!("{} [{}]: {err}", msg.topic(), msg.partition()));
            }
        }
    }
}
