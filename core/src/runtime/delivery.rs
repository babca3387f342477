//! Delivery tracking: the producer's acknowledgements, as the commit protocol needs them.
//!
//! Offsets may only move once every record they caused is acknowledged (invariant 1, docs/src/invariants.md), and a
//! store's checkpoint may only claim changelog offsets the broker acknowledged (invariant 2, docs/src/invariants.md).
//! So the tracker remembers, per changelog partition, the highest acknowledged offset, and keeps every delivery failure
//! until the next commit looks.

use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::Mutex;

/// The producer's context: counts acknowledgements and failures.
pub(crate) struct DeliveryTracker {
    /// changelog topic -> partition -> highest acknowledged offset.
    acked: Mutex<HashMap<String, HashMap<i32, i64>>>,
    failures: Mutex<Vec<String>>,
}

impl DeliveryTracker {
    pub(crate) fn new(changelog_topics: impl IntoIterator<Item = String>) -> Self {
        let acked = changelog_topics.into_iter().map(|t| (t, HashMap::new())).collect();
        DeliveryTracker { acked: Mutex::new(acked), failures: Mutex::new(Vec::new()) }
    }

    /// The changelog offset a restore of `(topic, partition)` would resume from: one past the last acknowledged.
    pub(crate) fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        acked.get(topic)?.get(&partition).map(|o| o + 1)
    }

    /// Failures since the last call.
    pub(crate) fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(msg) => {
                let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(parts) = acked.get_mut(msg.topic()) {
                    let slot = parts.entry(msg.partition()).or_insert(msg.offset());
                    *slot = (*slot).max(msg.offset());
                }
            }
            Err((err, msg)) => {
                let failure = format!("{} [{}]: {err}", msg.topic(), msg.partition());
                self.failures.lock().unwrap_or_else(|p| p.into_inner()).push(failure);
            }
        }
    }
}
