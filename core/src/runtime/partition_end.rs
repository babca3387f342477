//! Where a reader of assigned partitions stands, and where the partitions end: what restores and global tables
//! need to know when they have read everything.

use crate::error::StreamError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Offset;
use std::time::{Duration, Instant};

/// How long a reader polls before it asks for its position: short, because a changelog written in transactions
/// ends in a commit marker, which holds no record, so its end shows only in the position after an empty poll.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// Where `consumer` reads next in each assigned partition, as (topic, partition, offset). After an empty poll this
/// is past the offsets that hold no record (compacted away, or a transaction's marker), which no message reports.
pub(crate) fn positions(consumer: &BaseConsumer) -> Result<Vec<(String, i32, i64)>, StreamError> {
    let tpl = consumer.position().map_err(StreamError::kafka("reading the consumer's position"))?;
    Ok(tpl
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.topic().to_owned(), e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// The changelog partition's low and high watermarks, retrying transient errors (a leader moving or not elected
/// yet) for up to 30 seconds.
pub(crate) fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> Result<(i64, i64), StreamError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok(w) => return Ok(w),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(topic, partition, error = %e, "watermarks not available yet; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(StreamError::Kafka { context: format!("watermarks of {topic}[{partition}]"), source: e }),
        }
    }
}
