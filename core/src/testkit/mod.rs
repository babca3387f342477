//! An in-memory test driver in the spirit of Kafka Streams' `TopologyTestDriver`: pipe records with keys, values
//! and timestamps into a topology, read what it wrote to each topic (outputs, changelogs, dead letters), inspect its
//! stores. No broker, no threads: every call processes synchronously through the same [`Task`](crate::task) code
//! the runtime uses, so a topology test exercises the real processing path.

use crate::error::StreamError;
use crate::processor::RecordSink;
use crate::record::{InputRecord, OutgoingRecord, SourcePosition};
use crate::state::memory::MemoryStore;
use crate::state::{KeyValueStore, LoggedStore};
use crate::task::{Outcome, Task, TaskConfig};
use crate::task_id::TaskId;
use crate::time::{Clock, RecordTimestamp, TimestampMode};
use crate::topology::Topology;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Drives a topology in memory.
pub struct TopologyTestDriver {
    topology: Arc<Topology>,
    tasks: BTreeMap<TaskId, Task>,
    outputs: BTreeMap<String, VecDeque<OutgoingRecord>>,
    feedback: Feedback,
    next_offset: BTreeMap<(String, i32), i64>,
    mode: TimestampMode,
    partitions: i32,
    wall_clock: Arc<AtomicI64>,
    max_future_ms: Option<i64>,
    globals: BTreeMap<String, Arc<dyn KeyValueStore>>,
}

impl TopologyTestDriver {
    /// A driver for `topology`, with in-memory stores, taking event time from payloads.
    pub fn new(topology: Topology) -> Self {
        let globals = topology
            .global_tables()
            .iter()
            .map(|g| (g.store.clone(), Arc::new(MemoryStore::new(g.store.clone())) as Arc<dyn KeyValueStore>))
            .collect();
        let internal: BTreeSet<String> = topology.internal_topics().iter().cloned().collect();
        let read_back = topology.sink_topics().into_iter().filter(|t| topology.subtopology_of(t).is_some()).map(str::to_owned);
        let topics = internal.iter().cloned().chain(read_back).collect();
        TopologyTestDriver {
            feedback: Feedback { topics, internal, queue: VecDeque::new() },
            topology: Arc::new(topology),
            tasks: BTreeMap::new(),
            outputs: BTreeMap::new(),
            next_offset: BTreeMap::new(),
            mode: TimestampMode::Payload,
            partitions: 1,
            wall_clock: Arc::new(AtomicI64::new(0)),
            max_future_ms: None,
            globals,
        }
    }

    /// Bound event times ahead of the wall clock as the runtime does (`--max-future`; the driver's default is
    /// unbounded, since its wall clock starts at 0), and set the wall clock to `now_ms`.
    pub fn with_max_future(mut self, ahead: std::time::Duration, now_ms: i64) -> Self {
        self.max_future_ms = Some(i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX));
        self.wall_clock.store(now_ms, Ordering::SeqCst);
        self
    }

    /// How many partitions internal (repartition) topics have: where re-keyed records land, by murmur2 of the key.
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// Take event time from the record timestamp instead (`--timestamp record`).
    pub fn with_timestamp_mode(mut self, mode: TimestampMode) -> Self {
        self.mode = mode;
        self
    }

    /// The dead-letter topic of this topology (`<name>.dlq`).
    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dlq", self.topology.name())
    }

    /// The late-record topic of this topology (`<name>.late`).
    pub fn late_topic(&self) -> String {
        format!("{}.late", self.topology.name())
    }

    /// Move the driver's wall clock (processing time; it starts at 0) forward by `by`, and run every task's
    /// punctuation, as the runtime does about once a second. Its outputs can be read as usual.
    pub fn advance_wall_clock(&mut self, by: std::time::Duration) -> Result<(), StreamError> {
        self.wall_clock.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
        for task in self.tasks.values_mut() {
            task.punctuate(&mut Topics { outputs: &mut self.outputs, feedback: &mut self.feedback })?;
        }
        self.feed_back()
    }

    /// Pipe one record into `topic`, partition `partition`, with a record timestamp; returns what became of it.
    /// Whatever it wrote to internal repartition topics is processed too, before this returns.
    pub fn pipe_with(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<&str>,
        value: Option<&[u8]>,
        timestamp: RecordTimestamp,
    ) -> Result<Outcome, StreamError> {
        if let Some(g) = self.topology.global_tables().iter().find(|g| g.topic == topic) {
            // A global table's topic is read straight into its store, as the runtime's global consumer does.
            let Some(store) = self.globals.get(&g.store) else { return Err(StreamError::Config(format!("no global store {}", g.store))) };
            let Some(key) = key else { return Ok(Outcome::DeadLettered("a global table record needs a key".into())) };
            let mut batch = crate::state::WriteBatch::default();
            match value {
                Some(v) => batch.put(key.as_bytes().to_vec(), v.to_vec()),
                None => batch.delete(key.as_bytes().to_vec()),
            }
            store.apply(&batch, None)?;
            return Ok(Outcome::Processed);
        }
        let outcome =
            self.pipe_input(topic, partition, key.map(|k| k.as_bytes().to_vec()), value.map(<[u8]>::to_vec), timestamp, Vec::new())?;
        self.feed_back()?;
        Ok(outcome)
    }

    /// Pipe what the topology wrote to topics it reads itself (repartition topics, and a sink topic a later
    /// sub-topology reads) back in, on the partition the real producer would choose, until none are left.
    fn feed_back(&mut self) -> Result<(), StreamError> {
        while let Some(r) = self.feedback.queue.pop_front() {
            let partitions = self.topology.required_partitions(&r.topic).unwrap_or(self.partitions);
            let p = r.partition.unwrap_or_else(|| r.key.as_deref().map_or(0, |k| crate::partition::partition_for(k, partitions)));
            let ts = r.timestamp.map_or(RecordTimestamp::NotAvailable, RecordTimestamp::CreateTime);
            self.pipe_input(&r.topic, p, r.key, r.value, ts, r.headers)?;
        }
        Ok(())
    }

    fn pipe_input(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: RecordTimestamp,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Result<Outcome, StreamError> {
        let offset = *self.next_offset.entry((topic.to_owned(), partition)).or_insert(0);
        let input = InputRecord { position: SourcePosition { topic: topic.to_owned(), partition, offset }, key, value, timestamp, headers };
        let subtopology =
            self.topology.subtopology_of(topic).ok_or_else(|| StreamError::Config(format!("no source reads topic {topic}")))?;
        let id = TaskId::new(subtopology, partition);
        if !self.tasks.contains_key(&id) {
            let stores = self
                .topology
                .stores_of(subtopology)
                .iter()
                .map(|s| {
                    let backend: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new(s.name.clone()));
                    (s.name.clone(), LoggedStore::new(backend, s.changelog_topic(self.topology.name()), partition))
                })
                .collect();
            let config = TaskConfig {
                timestamp_mode: self.mode,
                dead_letter_topic: self.dead_letter_topic(),
                late_topic: self.late_topic(),
                max_future_ms: self.max_future_ms,
                input_partitions: self.partitions,
                max_record_bytes: crate::record::DEFAULT_MAX_RECORD_BYTES,
                clock: Clock::Manual(self.wall_clock.clone()),
                globals: self.globals.clone(),
            };
            let task = Task::new(self.topology.clone(), id, stores, config)?;
            self.tasks.insert(id, task);
        }
        let Some(task) = self.tasks.get_mut(&id) else { unreachable!("inserted above") };
        let outcome = task.process(&input, &mut Topics { outputs: &mut self.outputs, feedback: &mut self.feedback })?;
        if !matches!(outcome, Outcome::Retry(_)) {
            *self.next_offset.entry((topic.to_owned(), partition)).or_insert(0) += 1;
        }
        Ok(outcome)
    }

    /// Pipe one record into partition 0 of `topic` (record timestamp: CreateTime 0, which decides nothing by default).
    pub fn pipe(&mut self, topic: &str, key: Option<&str>, value: &[u8]) -> Result<Outcome, StreamError> {
        self.pipe_with(topic, 0, key, Some(value), RecordTimestamp::CreateTime(0))
    }

    /// Pipe a JSON value into partition 0 of `topic`.
    pub fn pipe_json<T: serde::Serialize>(&mut self, topic: &str, key: Option<&str>, value: &T) -> Result<Outcome, StreamError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StreamError::Config(format!("test value does not encode: {e}")))?;
        self.pipe(topic, key, &bytes)
    }

    /// Everything written to `topic` since the last read.
    pub fn read_output(&mut self, topic: &str) -> Vec<OutgoingRecord> {
        self.outputs.get_mut(topic).map(|q| q.drain(..).collect()).unwrap_or_default()
    }

    /// The values written to `topic` since the last read, decoded as JSON (records that do not decode are skipped
    /// and reported in the error).
    pub fn read_json<T: serde::de::DeserializeOwned>(&mut self, topic: &str) -> Result<Vec<T>, String> {
        self.read_output(topic)
            .into_iter()
            .map(|r| serde_json::from_slice(r.value.as_deref().unwrap_or(b"null")).map_err(|e| format!("{topic}: {e}")))
            .collect()
    }

    /// A store of the task for `partition` (of the store's sub-topology), uncommitted writes included.
    pub fn store(&self, name: &str, partition: i32) -> Option<&LoggedStore> {
        let id = TaskId::new(self.topology.store_subtopology(name)?, partition);
        self.tasks.get(&id)?.stores().find(|s| s.name() == name)
    }

    /// Commit every task: send the stores' coalesced changelog writes (readable on the changelog topics after
    /// this), then apply the stores' pending writes, as the runtime does once the broker acknowledged everything.
    pub fn commit(&mut self) -> Result<(), StreamError> {
        for task in self.tasks.values_mut() {
            task.drain_changelogs(&mut Topics { outputs: &mut self.outputs, feedback: &mut self.feedback })?;
            task.commit_stores(|_| None)?;
        }
        Ok(())
    }
}

/// Topics the topology writes and also reads: what it writes there waits here to be piped back in, as the broker
/// would deliver it to the sub-topology that reads it.
struct Feedback {
    topics: BTreeSet<String>,
    /// Repartition topics: no user reads them, so their records are not kept among the outputs.
    internal: BTreeSet<String>,
    queue: VecDeque<OutgoingRecord>,
}

/// The driver's "broker": topics as in-memory queues; every write is acknowledged at once.
struct Topics<'a> {
    outputs: &'a mut BTreeMap<String, VecDeque<OutgoingRecord>>,
    feedback: &'a mut Feedback,
}

impl RecordSink for Topics<'_> {
    fn send(&mut self, record: OutgoingRecord) -> Result<(), StreamError> {
        if !self.feedback.topics.contains(&record.topic) {
            self.outputs.entry(record.topic.clone()).or_default().push_back(record);
            return Ok(());
        }
        if !self.feedback.internal.contains(&record.topic) {
            self.outputs.entry(record.topic.clone()).or_default().push_back(record.clone());
        }
        self.feedback.queue.push_back(record);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
}

pub mod kafka;
pub mod process;
