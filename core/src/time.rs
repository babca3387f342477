//! Time has three faces: *event time* (when it happened, from the payload's `ts`), *log time* (the Kafka record
//! timestamp: CreateTime set by the producer, or LogAppendTime set by the broker), and *processing time* (the
//! wall clock now). Results here are decided by event time, or by the record timestamp when a service is told so
//! (`--timestamp record`); processing time decides nothing but retry backoffs and commit intervals.
//!
//! *Stream time* is per task and sub-topology: the highest event time seen there. It never goes back; windows close
//! by it. Processing time enters only through [`Clock`], for punctuation (closing windows of a partition that went
//! quiet), and a test can drive that clock by hand.

use chrono::{DateTime, TimeZone};

/// Which clock an [`EventTime`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampKind {
    /// The event's own `ts` field.
    Payload,
    /// The Kafka record timestamp, set by the producer.
    CreateTime,
    /// The Kafka record timestamp, set by the broker on append.
    LogAppendTime,
}

impl TimestampKind {
    /// The kind named by [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "payload" => Some(TimestampKind::Payload),
            "create-time" => Some(TimestampKind::CreateTime),
            "log-append-time" => Some(TimestampKind::LogAppendTime),
            _ => None,
        }
    }

    /// The name used in logs, metrics and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampKind::Payload => "payload",
            TimestampKind::CreateTime => "create-time",
            TimestampKind::LogAppendTime => "log-append-time",
        }
    }
}

/// An event time in milliseconds since the epoch, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    /// Milliseconds since the Unix epoch, UTC.
    pub millis: i64,
    /// The clock that said so.
    pub kind: TimestampKind,
}

impl EventTime {
    /// An event time read from the payload.
    pub fn payload<Tz: TimeZone>(ts: &DateTime<Tz>) -> Self {
        EventTime { millis: ts.timestamp_millis(), kind: TimestampKind::Payload }
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC, for messages (the number itself when chrono cannot represent it).
pub fn rfc3339(millis: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis)
        .map_or_else(|| format!("{millis} ms"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The Kafka record timestamp of an input record, with its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTimestamp {
    /// Set by the producer.
    CreateTime(i64),
    /// Set by the broker (`message.timestamp.type=LogAppendTime`).
    LogAppendTime(i64),
    /// The record has none (old message format).
    NotAvailable,
}

impl RecordTimestamp {
    /// The record timestamp as an event time, if it has one.
    pub fn as_event_time(self) -> Option<EventTime> {
        match self {
            RecordTimestamp::CreateTime(ms) => Some(EventTime { millis: ms, kind: TimestampKind::CreateTime }),
            RecordTimestamp::LogAppendTime(ms) => Some(EventTime { millis: ms, kind: TimestampKind::LogAppendTime }),
            RecordTimestamp::NotAvailable => None,
        }
    }
}

impl From<rdkafka::Timestamp> for RecordTimestamp {
    fn from(ts: rdkafka::Timestamp) -> Self {
        match ts {
            rdkafka::Timestamp::CreateTime(ms) => RecordTimestamp::CreateTime(ms),
            rdkafka::Timestamp::LogAppendTime(ms) => RecordTimestamp::LogAppendTime(ms),
            rdkafka::Timestamp::NotAvailable => RecordTimestamp::NotAvailable,
        }
    }
}

/// Which time decides results: the payload's `ts` (the default) or the Kafka record timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampMode {
    /// Event time from the payload's `ts` field.
    #[default]
    Payload,
    /// Event time from the Kafka record timestamp (CreateTime or LogAppendTime, reported as such).
    Record,
}

impl std::str::FromStr for TimestampMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "payload" | "event" => Ok(TimestampMode::Payload),
            "record" => Ok(TimestampMode::Record),
            other => Err(format!("unknown timestamp mode {other:?}: expected payload or record")),
        }
    }
}

/// A task's stream time: the highest event time seen so far. Never goes back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTime(Option<i64>);

impl StreamTime {
    // ANCHOR: stream_time
    /// Advance with an observed event time; an older event leaves stream time where it is.
    pub fn observe(&mut self, t: EventTime) {
        self.0 = Some(self.0.map_or(t.millis, |cur| cur.max(t.millis)));
    }
    // ANCHOR_END: stream_time

    /// The current stream time in milliseconds, if any record has been seen.
    pub fn millis(self) -> Option<i64> {
        self.0
    }
}

/// Processing time: the wall clock, or a hand-driven one in tests.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when told to (milliseconds since the epoch).
    Manual(std::sync::Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    /// Now, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => chrono::Utc::now().timestamp_millis(),
            Clock::Manual(t) => t.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_time_never_goes_back() {
        let mut st = StreamTime::default();
        assert_eq!(st.millis(), None);
        st.observe(EventTime { millis: 100, kind: TimestampKind::Payload });
        st.observe(EventTime { millis: 50, kind: TimestampKind::Payload });
        assert_eq!(st.millis(), Some(100));
        st.observe(EventTime { millis: 150, kind: TimestampKind::CreateTime });
        assert_eq!(st.millis(), Some(150));
    }

    #[test]
    fn record_timestamps_keep_their_type() {
        let t = RecordTimestamp::from(rdkafka::Timestamp::LogAppendTime(7)).as_event_time();
        assert_eq!(t, Some(EventTime { millis: 7, kind: TimestampKind::LogAppendTime }));
        assert_eq!(RecordTimestamp::NotAvailable.as_event_time(), None);
    }
}
