//! Restoring a store from its changelog partition before its task processes anything.
//!
//! The restore resumes from the store's checkpoint (the changelog offset its local data corresponds to), so an
//! intact RocksDB directory replays only what it missed; an empty or in-memory store replays from the start.
//! Writes are applied in batches, each with the offset it reaches, so an interrupted restore also resumes.

use crate::error::StreamError;
use crate::metrics::Metrics;
use crate::state::{KeyValueStore, WriteBatch};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

const BATCH: usize = 10_000;
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
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

/// What a restore found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Restored {
    /// Replayed this many changelog records (0: the local state was current).
    Records(u64),
    /// The local checkpoint is outside the changelog: beyond its end (the changelog was recreated or truncated,
    /// so the local data belongs to another history), or below its start (records the local data lacks were
    /// deleted, tombstones among them, so replaying from the start would keep keys the changelog deleted). The
    /// caller must discard it and restore again from scratch.
    StaleCheckpoint { checkpoint: i64, end: i64 },
}

/// Replays `topic`/`partition` into `store` from its checkpoint to the current end.
pub(crate) fn restore(
    consumer: &BaseConsumer,
    store: &dyn KeyValueStore,
    topic: &str,
    partition: i32,
    metrics: &Metrics,
) -> Result<Restored, StreamError> {
    let (low, high) = watermarks(consumer, topic, partition)?;
    let checkpoint = store.checkpoint()?;
    if let Some(cp) = checkpoint.filter(|cp| *cp > high || *cp < low) {
        return Ok(Restored::StaleCheckpoint { checkpoint: cp, end: high });
    }
    let from = checkpoint.unwrap_or(low);
    let remaining = metrics.restore_remaining.with_label_values(&[store.name(), &partition.to_string()]);
    if from >= high {
        if checkpoint != Some(high) {
            store.apply(&WriteBatch::default(), Some(high))?;
        }
        remaining.set(0);
        return Ok(Restored::Records(0));
    }
    tracing::info!(store = store.name(), partition, from, to = high, resumed = checkpoint.is_some(), "restoring from changelog");
    let started = Instant::now();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(StreamError::kafka("restore assignment"))?;
    consumer.assign(&tpl).map_err(StreamError::kafka("restore assignment"))?;
    let restored_counter = metrics.restored.with_label_values(&[store.name()]);
    let (mut batch, mut restored, mut counted, mut reached) = (WriteBatch::default(), 0u64, 0u64, from);
    let mut last_progress = Instant::now();
    while reached < high {
        match consumer.poll(POLL) {
            Some(Ok(msg)) => {
                if let Some(key) = msg.key() {
                    match msg.payload() {
                        Some(v) => batch.put(key.to_vec(), v.to_vec()),
                        None => batch.delete(key.to_vec()),
                    }
                }
                reached = msg.offset() + 1;
                restored += 1;
                last_progress = Instant::now();
                if batch.len() >= BATCH {
                    store.apply(&batch, Some(reached))?;
                    batch = WriteBatch::default();
                    restored_counter.inc_by(restored - counted);
                    counted = restored;
                    remaining.set(high - reached);
                }
            }
            Some(Err(e)) => return Err(StreamError::Kafka { context: format!("restoring {topic}[{partition}]"), source: e }),
            None => {
                for (_, _, p) in positions(consumer)?.into_iter().filter(|(t, p, _)| t == topic && *p == partition) {
                    reached = reached.max(p);
                }
                if last_progress.elapsed() > STALL_TIMEOUT {
                    return Err(StreamError::Config(format!("restore of {topic}[{partition}] made no progress for {STALL_TIMEOUT:?}")));
                }
            }
        }
    }
    restored_counter.inc_by(restored - counted);
    store.apply(&batch, Some(high))?;
    remaining.set(0);
    consumer.unassign().map_err(StreamError::kafka("restore unassign"))?;
    metrics.restore_seconds.inc_by(started.elapsed().as_secs_f64());
    tracing::info!(store = store.name(), partition, restored, "restore complete");
    Ok(Restored::Records(restored))
}
