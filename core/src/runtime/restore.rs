//! Restoring a task's stores from their changelog partitions before the task processes anything.
//!
//! A restore resumes from the store's checkpoint (the changelog offset its local data corresponds to), so an
//! intact RocksDB directory replays only what it missed; an empty or in-memory store replays from the start.
//! Writes are applied in batches, each with the offset it reaches, so an interrupted restore also resumes. The
//! [`Restorer`] holds what a restore needs, so that it can run on a thread of its own (`state_updater`).

use super::guarantee::{CALL_TIMEOUT, TRANSACTION_TIMEOUT};
use super::partition_end::{positions, watermarks, POLL};
use crate::error::StreamError;
use crate::metrics::Metrics;
use crate::state::budget::StateMemory;
use crate::state::memory::MemoryStore;
use crate::state::rocksdb::RocksDbStore;
use crate::state::{Backend, KeyValueStore, LogBatch, StoreSpec, WriteBatch};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 10_000;
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// The task was revoked while it restored: the store is as far as the last batch applied.
    Cancelled,
}

/// Why a changelog is replayed, which says where it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Into a task about to become active: `streamcore_restored_records_total`, the restore gauges and logs.
    Restore,
    /// Into a standby replica, again and again: `streamcore_standby_*`, logged at debug.
    Standby,
}

/// Replays `topic`/`partition` into `store` from its checkpoint to the current end, unless `cancel` is set.
pub(crate) fn restore(
    consumer: &BaseConsumer,
    store: &dyn KeyValueStore,
    (topic, partition): (&str, i32),
    metrics: &Metrics,
    replay: Replay,
    cancel: &AtomicBool,
) -> Result<Restored, StreamError> {
    let (low, high) = watermarks(consumer, topic, partition)?;
    let checkpoint = store.checkpoint()?;
    if let Some(cp) = checkpoint.filter(|cp| *cp > high || *cp < low) {
        return Ok(Restored::StaleCheckpoint { checkpoint: cp, end: high });
    }
    let from = checkpoint.unwrap_or(low);
    let (counter, remaining) = match replay {
        Replay::Restore => (&metrics.restored, &metrics.restore_remaining),
        Replay::Standby => (&metrics.standby_replayed, &metrics.standby_lag),
    };
    let remaining = remaining.with_label_values(&[store.name(), &partition.to_string()]);
    if from >= high {
        if checkpoint != Some(high) {
            store.apply(&WriteBatch::default(), Some(high))?;
        }
        remaining.set(0);
        return Ok(Restored::Records(0));
    }
    if replay == Replay::Restore {
        tracing::info!(store = store.name(), partition, from, to = high, resumed = checkpoint.is_some(), "restoring from changelog");
    }
    let started = Instant::now();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(StreamError::kafka("restore assignment"))?;
    consumer.assign(&tpl).map_err(StreamError::kafka("restore assignment"))?;
    let restored_counter = counter.with_label_values(&[store.name()]);
    let (mut batch, mut restored, mut counted, mut reached) = (LogBatch::default(), 0u64, 0u64, from);
    let mut last_progress = Instant::now();
    while reached < high {
        if cancel.load(Ordering::Relaxed) {
            store.apply_log(&batch, Some(reached))?;
            consumer.unassign().map_err(StreamError::kafka("restore unassign"))?;
            return Ok(Restored::Cancelled);
        }
        match consumer.poll(POLL) {
            Some(Ok(msg)) => {
                if let Some(key) = msg.key() {
                    batch.push(key, msg.payload());
                }
                reached = msg.offset() + 1;
                restored += 1;
                last_progress = Instant::now();
                if batch.len() >= BATCH {
                    store.apply_log(&batch, Some(reached))?;
                    batch.clear();
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
    store.apply_log(&batch, Some(high))?;
    remaining.set(0);
    consumer.unassign().map_err(StreamError::kafka("restore unassign"))?;
    if replay == Replay::Restore {
        metrics.restore_seconds.inc_by(started.elapsed().as_secs_f64());
        tracing::info!(store = store.name(), partition, restored, "restore complete");
    } else {
        tracing::debug!(store = store.name(), partition, restored, "standby caught up");
    }
    Ok(Restored::Records(restored))
}

/// A task's stores, restored: each with its spec.
pub(super) type TaskStores = Vec<(StoreSpec, Arc<dyn KeyValueStore>)>;

/// What restoring a task's stores needs, owned, so that a restore can run on a thread of its own.
#[derive(Clone)]
pub(super) struct Restorer {
    /// The application id: stores live in `<state_dir>/<application-id>/<partition>/<store>`.
    pub(super) application_id: String,
    pub(super) state_dir: PathBuf,
    /// The configuration of restore consumers, which only read assigned partitions.
    pub(super) consumer: ClientConfig,
    /// Under exactly-once: a client of the application's group, which never joins it, to wait for stable offsets.
    pub(super) group: Option<ClientConfig>,
    pub(super) metrics: Metrics,
    /// The memory budget every RocksDB store of the instance shares.
    pub(super) memory: StateMemory,
}

impl Restorer {
    /// Open the stores `specs` of partition `partition`'s task and bring them up to their changelogs' end. Under
    /// exactly-once, first wait until the offsets of the task's input partitions `sources` are stable,
    /// that is until a previous owner's open transaction committed or aborted, so the changelogs are read to where
    /// it ended.
    /// `None` when `cancel` was set first.
    pub(super) fn restore_task(
        &self,
        specs: &[StoreSpec],
        partition: i32,
        sources: &TopicPartitionList,
        cancel: &AtomicBool,
    ) -> Result<Option<TaskStores>, StreamError> {
        if !self.await_stable_offsets(sources, cancel)? {
            return Ok(None);
        }
        let consumer: BaseConsumer = self.consumer.create().map_err(StreamError::kafka("creating a restore consumer"))?;
        let mut stores = Vec::new();
        for spec in specs {
            match self.open_restored(&consumer, spec, partition, Replay::Restore, cancel)? {
                Some(backend) => stores.push((spec.clone(), backend)),
                None => return Ok(None),
            }
        }
        Ok(Some(stores))
    }

    /// Under exactly-once, wait for stable offsets of `sources`; false when cancelled first.
    fn await_stable_offsets(&self, sources: &TopicPartitionList, cancel: &AtomicBool) -> Result<bool, StreamError> {
        let Some(group) = &self.group else { return Ok(true) };
        let client: BaseConsumer = group.create().map_err(StreamError::kafka("creating a client of the group"))?;
        let deadline = Instant::now() + TRANSACTION_TIMEOUT + CALL_TIMEOUT;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Ok(false);
            }
            // Short calls, so that a cancel is seen; librdkafka retries an unstable answer until the call times out.
            match client.committed_offsets(sources.clone(), Duration::from_secs(1)) {
                Ok(_) => return Ok(true),
                Err(e) if Instant::now() < deadline => tracing::debug!(error = %e, "offsets not stable yet"),
                Err(e) => return Err(StreamError::Kafka { context: "waiting for stable offsets".into(), source: e }),
            }
        }
    }

    fn store_dir(&self, spec: &StoreSpec, partition: i32) -> PathBuf {
        self.state_dir.join(&self.application_id).join(partition.to_string()).join(&spec.name)
    }

    fn open_store(&self, spec: &StoreSpec, partition: i32) -> Result<Arc<dyn KeyValueStore>, StreamError> {
        Ok(match spec.backend {
            Backend::InMemory => Arc::new(MemoryStore::new(spec.name.clone())),
            Backend::RocksDb => Arc::new(RocksDbStore::open(spec.name.clone(), &self.store_dir(spec, partition), &self.memory)?),
        })
    }

    /// Open a store and bring it up to the changelog's end, discarding local data that belongs to another history.
    pub(super) fn open_restored(
        &self,
        consumer: &BaseConsumer,
        spec: &StoreSpec,
        partition: i32,
        replay: Replay,
        cancel: &AtomicBool,
    ) -> Result<Option<Arc<dyn KeyValueStore>>, StreamError> {
        let changelog = spec.changelog_topic(&self.application_id);
        let backend = self.open_store(spec, partition)?;
        match restore(consumer, backend.as_ref(), (&changelog, partition), &self.metrics, replay, cancel)? {
            Restored::Records(_) => Ok(Some(backend)),
            Restored::Cancelled => Ok(None),
            Restored::StaleCheckpoint { checkpoint, end } => {
                tracing::warn!(store = %spec.name, partition, checkpoint, end, "local state is outside its changelog (recreated topic, or records deleted below it); rebuilding it from the changelog");
                drop(backend);
                let dir = self.store_dir(spec, partition);
                std::fs::remove_dir_all(&dir).map_err(|source| crate::state::StoreError::Io { path: dir, source })?;
                let backend = self.open_store(spec, partition)?;
                match restore(consumer, backend.as_ref(), (&changelog, partition), &self.metrics, replay, cancel)? {
                    Restored::Records(_) => Ok(Some(backend)),
                    Restored::Cancelled => Ok(None),
                    Restored::StaleCheckpoint { .. } => Err(StreamError::Config(format!("{changelog}[{partition}] moved while restoring"))),
                }
            }
        }
    }
}
