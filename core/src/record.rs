//! An event as the topology sees it: an optional key, a typed value, and its event time.
//!
//! Keys are UTF-8 strings throughout the suite (the entity id), so the key type is fixed; values are whatever the
//! source's codec produced. Where a record came from (topic, partition, offset) is not part of the record: it is
//! on the [`ProcessorContext`](crate::ProcessorContext), because only the input record has one.

use crate::time::EventTime;

/// A keyed, timestamped event flowing through a topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<V> {
    /// The record key (an entity id), if the record has one.
    pub key: Option<String>,
    /// The event.
    pub value: V,
    /// When the event happened, and which clock said so.
    pub time: EventTime,
}

impl<V> Record<V> {
    /// The same key and time with another value: what `map_values` does.
    pub fn with_value<W>(self, value: W) -> Record<W> {
        Record { key: self.key, value, time: self.time }
    }
}

/// The coordinates of the input record being processed: what a dead-letter record points back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    /// The input topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// The record's offset in that partition.
    pub offset: i64,
}

/// A record as it arrived from Kafka, owned, before deserialization.
#[derive(Debug, Clone)]
pub struct InputRecord {
    /// Where it came from.
    pub position: SourcePosition,
    /// Key bytes, if any.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// The Kafka record timestamp, with its type.
    pub timestamp: crate::time::RecordTimestamp,
    /// Headers, kept for the dead-letter copy.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The largest record (key, value and headers) a producer sends unless told otherwise: librdkafka's default
/// `message.max.bytes`, and about the broker's default limit.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1_000_000;

/// What a record's framing (lengths, attributes, the batch it travels in) may add to its key, value and headers:
/// kept free under the limit, so a record that passes the check is one the producer accepts.
pub const RECORD_OVERHEAD_BYTES: usize = 1024;

/// A record on its way to a topic: sink output, a changelog write, or a dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRecord {
    /// Destination topic.
    pub topic: String,
    /// Explicit partition (changelogs follow their task), or `None` to partition by key.
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` writes a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record timestamp to write (milliseconds since the epoch); `None` lets the producer stamp it now.
    ///
    /// Outputs and changelog records are stamped by the producer, not with their event time: event time lives in
    /// the payload, and the broker rejects timestamps too far from its clock (`log.message.timestamp.after.max.ms`,
    /// one hour by default in Kafka 4), so an event dated next week must not be able to stop a service.
    pub timestamp: Option<i64>,
}

impl OutgoingRecord {
    /// Bytes of key, value and headers: what the producer compares with `message.max.bytes`.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len) + headers
    }
}
