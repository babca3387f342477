//! A task: the unit of parallelism. The runtime creates one per sub-topology and assigned partition of its sources
//! (task [`TaskId`] `<sub-topology>_<partition>`), with its own instances of that sub-topology's processors, its own
//! stores (changelog partition = input partition) and its own stream time, and closes it when the partition is
//! revoked. Tasks share nothing, not even the tasks of the same partition in other sub-topologies, so they can run
//! on any thread of any instance.

use crate::error::{ProcessError, StreamError};
use crate::processor::{Emit, NodeContext, RecordSink, TaskState, Value};
use crate::record::{InputRecord, OutgoingRecord, Record, SourcePosition, RECORD_OVERHEAD_BYTES};
use crate::state::{LoggedStore, StoreError};
use crate::task_id::TaskId;
use crate::time::{Clock, StreamTime, TimestampMode};
use crate::topology::nodes::Node;
use crate::topology::Topology;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What became of one input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed; its outputs are in the outbox.
    Processed,
    /// Written to the dead-letter topic, for this reason.
    DeadLettered(String),
    /// A transient failure: process the same record again later; commit nothing past it.
    Retry(String),
}

/// What every task of a runtime shares: how to read time, where dead and late records go, the global tables.
#[derive(Clone)]
pub(crate) struct TaskConfig {
    /// The partition count of the task's sources: where murmur2 puts a table's keys.
    pub(crate) input_partitions: i32,
    pub(crate) timestamp_mode: TimestampMode,
    pub(crate) dead_letter_topic: String,
    pub(crate) late_topic: String,
    /// How far ahead of the wall clock an event time may be (ms); `None`: unbounded.
    pub(crate) max_future_ms: Option<i64>,
    /// The largest record the producer sends (`message.max.bytes`): an output over it is refused as the input's
    /// fault before anything is sent, and a dead letter over it is cut to fit.
    pub(crate) max_record_bytes: usize,
    pub(crate) clock: Clock,
    /// The runtime's global tables.
    pub(crate) globals: BTreeMap<String, Arc<dyn crate::state::KeyValueStore>>,
}

/// One task: one sub-topology's processors and state for one partition of its sources.
pub(crate) struct Task {
    id: TaskId,
    topology: Arc<Topology>,
    /// By the topology's node index: this task's instance of each node of its sub-topology, `None` for the others.
    nodes: Vec<Option<Box<dyn Node>>>,
    state: TaskState,
    config: TaskConfig,
    /// Per source topic, the next offset to commit (last processed + 1).
    consumed: BTreeMap<String, i64>,
}

impl Task {
    /// Instantiate the nodes of task `id`'s sub-topology over its restored `stores`, and run their `init` hooks.
    pub(crate) fn new(
        topology: Arc<Topology>,
        id: TaskId,
        stores: BTreeMap<String, LoggedStore>,
        config: TaskConfig,
    ) -> Result<Self, StreamError> {
        let nodes = instantiate(&topology, id.subtopology);
        let position = SourcePosition { topic: String::new(), partition: id.partition, offset: -1 };
        let state = TaskState {
            partition: id.partition,
            stores,
            stream_time: StreamTime::default(),
            wall_ms: config.clock.now_ms(),
            outbox: Vec::new(),
            position,
            late_topic: config.late_topic.clone(),
            globals: config.globals.clone(),
        };
        let mut task = Task { id, topology, nodes, state, config, consumed: BTreeMap::new() };
        task.init_nodes()?;
        Ok(task)
    }

    /// The task's name: its sub-topology and partition.
    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    /// The same task started over on what its stores committed, for reprocessing from the committed offsets: the
    /// stores' uncommitted writes are dropped, the processors are created and initialised again (what they keep in
    /// memory must agree with the stores), and stream time starts over. Nothing is read from the changelogs: a
    /// backend only ever holds committed writes.
    pub(crate) fn restarted(mut self) -> Result<Task, StreamError> {
        self.close();
        let stores = std::mem::take(&mut self.state.stores).into_iter().map(|(name, store)| (name, store.discarded())).collect();
        Task::new(self.topology.clone(), self.id, stores, self.config.clone())
    }

    /// Process one input record; everything it produced (outputs, changelog writes, a dead letter) goes to `sink`.
    pub(crate) fn process(&mut self, input: &InputRecord, sink: &mut dyn RecordSink) -> Result<Outcome, StreamError> {
        self.state.position.clone_from(&input.position);
        let topology = self.topology.clone();
        let Some(source) = topology.source_for(&input.position.topic).filter(|s| self.nodes[s.node].is_some()) else {
            return Err(StreamError::Config(format!("no source of task {} reads topic {}", self.id, input.position.topic)));
        };
        let outcome = match (source.decode)(input, self.config.timestamp_mode) {
            Err(reason) => Outcome::DeadLettered(reason),
            Ok(_) if self.misplaced(source.keyed, input) => Outcome::DeadLettered(format!(
                "key {:?} belongs on partition {} of {} by murmur2 (the Java client's partitioner), not {}: the producer \
                 partitioned it otherwise, and the task that joins this key would never see it",
                String::from_utf8_lossy(input.key.as_deref().unwrap_or_default()),
                crate::partition::partition_for(input.key.as_deref().unwrap_or_default(), self.config.input_partitions),
                input.position.topic,
                input.position.partition,
            )),
            Ok(record) if self.too_far_ahead(record.time.millis) => Outcome::DeadLettered(format!(
                "event time {} is more than {} ms ahead of the wall clock ({})",
                crate::time::rfc3339(record.time.millis),
                self.config.max_future_ms.unwrap_or_default(),
                crate::time::rfc3339(self.state.wall_ms),
            )),
            Ok(record) => {
                self.state.stream_time.observe(record.time);
                match self.run(source.node, record, sink).and_then(|()| self.check_output_sizes()) {
                    Ok(()) => {
                        self.state.keep_record();
                        self.state.drain_outputs(sink)?;
                        Outcome::Processed
                    }
                    // All or nothing: a record that fails part-way (one branch refuses it after another wrote)
                    // leaves no trace but its dead letter, and a retried record does not repeat its outputs.
                    Err(ProcessError::Invalid(reason)) => {
                        self.roll_back_record()?;
                        Outcome::DeadLettered(reason)
                    }
                    Err(ProcessError::Retry(reason)) => {
                        self.roll_back_record()?;
                        return Ok(Outcome::Retry(reason));
                    }
                    Err(ProcessError::Store(e)) => return Err(StreamError::Store(e)),
                    Err(ProcessError::Sink(e)) => return Err(*e),
                    Err(e) => return Err(StreamError::Process(e.to_string())),
                }
            }
        };
        if let Outcome::DeadLettered(reason) = &outcome {
            sink.send(dead_letter(input, reason, &self.config.dead_letter_topic, self.config.max_record_bytes))?;
        }
        self.advance(&input.position);
        Ok(outcome)
    }

    /// Dead-letter `input` without processing it: the broker keeps refusing its outputs (see
    /// [`crate::runtime`]'s refusals). The copy has no timestamp of its own, since the input's may be what the
    /// broker refused; the header `source.timestamp` keeps it (milliseconds since the epoch).
    pub(crate) fn refuse(&mut self, input: &InputRecord, reason: &str, sink: &mut dyn RecordSink) -> Result<(), StreamError> {
        let mut letter = dead_letter(input, reason, &self.config.dead_letter_topic, self.config.max_record_bytes);
        if let Some(ts) = letter.timestamp.take() {
            letter.headers.push(("source.timestamp".into(), ts.to_string().into_bytes()));
        }
        sink.send(letter)?;
        self.advance(&input.position);
        Ok(())
    }

    /// The input at `position` is done with: the next commit moves past it.
    fn advance(&mut self, position: &SourcePosition) {
        let next = position.offset + 1;
        match self.consumed.get_mut(&position.topic) {
            Some(offset) => *offset = next,
            None => {
                self.consumed.insert(position.topic.clone(), next);
            }
        }
    }

    /// An output the producer would refuse (over `message.max.bytes`) is the input record's fault, known before
    /// anything is sent: refusing the input here keeps a record the broker will never take from stopping the
    /// service or being retried forever.
    fn check_output_sizes(&self) -> Result<(), ProcessError> {
        let limit = self.config.max_record_bytes.saturating_sub(RECORD_OVERHEAD_BYTES);
        match self.state.outbox.iter().find(|r| r.size() > limit) {
            Some(r) => Err(ProcessError::Invalid(format!(
                "its output to {} is {} bytes, over the {} bytes a record may have",
                r.topic,
                r.size(),
                self.config.max_record_bytes
            ))),
            None => Ok(()),
        }
    }

    /// Whether a table record is on another partition than murmur2 gives its key.
    fn misplaced(&self, keyed: bool, input: &InputRecord) -> bool {
        keyed
            && input
                .key
                .as_deref()
                .is_some_and(|k| crate::partition::partition_for(k, self.config.input_partitions.max(1)) != input.position.partition)
    }

    /// Whether an event time is beyond the bound ahead of the wall clock (as of the last punctuation, so within a
    /// second): such a record must not move stream time, or every valid record after it would be late.
    fn too_far_ahead(&self, millis: i64) -> bool {
        self.config.max_future_ms.is_some_and(|ahead| millis > self.state.wall_ms.saturating_add(ahead))
    }

    /// Take back what the failed record in hand wrote. If it wrote to a store, the processors are created and
    /// initialised again, so that what they keep in memory (a window index, a ranking) agrees with the stores.
    fn roll_back_record(&mut self) -> Result<(), StreamError> {
        if self.state.roll_back_record() {
            self.nodes = instantiate(&self.topology, self.id.subtopology);
            self.init_nodes()?;
        }
        Ok(())
    }

    /// Run every node's `init` hook, in topology order.
    fn init_nodes(&mut self) -> Result<(), StreamError> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(node) = node else { continue };
            let mut emitted = Vec::new();
            let mut sink = InitSink;
            let mut ctx = NodeContext { state: &mut self.state, emitted: &mut emitted, sink: &mut sink };
            node.init(&mut ctx).map_err(|e| StreamError::Process(format!("init of {}: {e}", self.topology.nodes[i].name)))?;
        }
        Ok(())
    }

    /// Give every node its processing-time hook (about once a second), then send what they produced.
    pub(crate) fn punctuate(&mut self, sink: &mut dyn RecordSink) -> Result<(), StreamError> {
        self.state.wall_ms = self.config.clock.now_ms();
        for node in 0..self.nodes.len() {
            let Some(instance) = self.nodes[node].as_mut() else { continue };
            let mut emitted: Vec<Emit> = Vec::new();
            let result = {
                let mut ctx = NodeContext { state: &mut self.state, emitted: &mut emitted, sink };
                instance.punctuate(&mut ctx)
            };
            let result = result.and_then(|()| self.route(node, emitted, sink));
            self.state.keep_record();
            self.state.drain_outputs(sink)?;
            if let Err(e) = result {
                let name = &self.topology.nodes[node].name;
                return Err(StreamError::Process(format!("punctuation of {name}: {e}")));
            }
        }
        Ok(())
    }

    fn run(&mut self, node: usize, record: Record<Value>, sink: &mut dyn RecordSink) -> Result<(), ProcessError> {
        let mut emitted: Vec<Emit> = Vec::new();
        {
            // Children are in their parent's sub-topology, and a record enters only through one of the task's sources.
            let instance = self.nodes[node].as_mut().ok_or_else(|| {
                ProcessError::Fatal(format!("{} is not in task {}'s sub-topology", self.topology.nodes[node].name, self.id))
            })?;
            let mut ctx = NodeContext { state: &mut self.state, emitted: &mut emitted, sink };
            instance.process(record, &mut ctx)?;
        }
        self.route(node, emitted, sink)
    }

    /// Pass what `node` emitted on to its children.
    fn route(&mut self, node: usize, emitted: Vec<Emit>, sink: &mut dyn RecordSink) -> Result<(), ProcessError> {
        if emitted.is_empty() {
            return Ok(());
        }
        let topology = self.topology.clone();
        let spec = &topology.nodes[node];
        for Emit { child, record } in emitted {
            match child {
                Some(i) => {
                    let target = *spec.children.get(i).ok_or_else(|| ProcessError::Fatal(format!("{} has no output {i}", spec.name)))?;
                    self.run(target, record, sink)?;
                }
                None => {
                    let Some((&last, rest)) = spec.children.split_last() else { continue };
                    for &c in rest {
                        let value = (spec.clone_output)(&record.value)
                            .ok_or_else(|| ProcessError::Fatal(format!("cannot clone output of {}", spec.name)))?;
                        self.run(c, Record { key: record.key.clone(), value, time: record.time }, sink)?;
                    }
                    self.run(last, record, sink)?;
                }
            }
        }
        Ok(())
    }

    /// The offsets to commit for this task: per source topic, the next offset to read.
    pub(crate) fn consumed(&self) -> &BTreeMap<String, i64> {
        &self.consumed
    }

    /// Send the stores' coalesced changelog writes: the first step of a commit, before waiting for acks.
    pub(crate) fn drain_changelogs(&mut self, sink: &mut dyn RecordSink) -> Result<(), StreamError> {
        self.state.drain_changelogs(sink)
    }

    /// Apply every store's pending batch, with the changelog offset `checkpoint(changelog_topic)` returns.
    pub(crate) fn commit_stores(&mut self, checkpoint: impl Fn(&str) -> Option<i64>) -> Result<(), StoreError> {
        for store in self.state.stores.values_mut() {
            let offset = checkpoint(store.changelog_topic());
            store.commit(offset)?;
        }
        Ok(())
    }

    /// The task's stores (for registering them with interactive queries).
    pub(crate) fn stores(&self) -> impl Iterator<Item = &LoggedStore> {
        self.state.stores.values()
    }

    /// Close the processors. Stores close when the task is dropped.
    pub(crate) fn close(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            n.close();
        }
    }
}

/// This task's instances of the nodes of `subtopology`, by the topology's node index.
fn instantiate(topology: &Topology, subtopology: usize) -> Vec<Option<Box<dyn Node>>> {
    topology.nodes.iter().map(|n| (n.subtopology == subtopology).then(|| (n.factory)())).collect()
}

/// `init` hooks run before any input, so there is nothing to flush and nowhere else to send.
struct InitSink;

impl RecordSink for InitSink {
    fn send(&mut self, record: OutgoingRecord) -> Result<(), StreamError> {
        Err(StreamError::Process(format!("a processor wrote to {} during init", record.topic)))
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
}

/// The dead-letter copy of an input record: original key, value and headers, plus why and where from.
///
/// A record the broker took can still be too large to copy whole: the copy adds headers, and the input may have
/// been written with a larger limit than this service's producer has. Then the value (and, if need be, the key)
/// is cut to fit, the headers `value.truncated.from` / `key.truncated.from` give the original lengths, and
/// `source.*` still point at the whole record. A dead letter that cannot be sent would stop the service on it.
pub(crate) fn dead_letter(input: &InputRecord, reason: &str, topic: &str, max_record_bytes: usize) -> OutgoingRecord {
    let mut headers = input.headers.clone();
    headers.push(("error".into(), reason.as_bytes().to_vec()));
    headers.push(("source.topic".into(), input.position.topic.as_bytes().to_vec()));
    headers.push(("source.partition".into(), input.position.partition.to_string().into_bytes()));
    headers.push(("source.offset".into(), input.position.offset.to_string().into_bytes()));
    let mut record = OutgoingRecord {
        topic: topic.to_owned(),
        partition: None,
        key: input.key.clone(),
        value: input.value.clone(),
        headers,
        timestamp: input.timestamp.as_event_time().map(|t| t.millis),
    };
    let limit = max_record_bytes.saturating_sub(RECORD_OVERHEAD_BYTES);
    if record.size() > limit {
        let header_bytes = |h: &[(String, Vec<u8>)]| h.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if header_bytes(&record.headers) > limit / 2 {
            // The input's own headers alone are too large: keep only the four this copy adds, and say so.
            let own = record.headers.len() - 4;
            record.headers.drain(..own);
            record.headers.push(("headers.dropped".into(), own.to_string().into_bytes()));
        }
        // The value is cut first, leaving room for its mark and the key's; the key only if that was not enough.
        let mark = "value.truncated.from".len() + 20;
        for (cut_value, marks) in [(true, 2 * mark), (false, mark)] {
            let excess = (record.size() + marks).saturating_sub(limit);
            let (field, name) =
                if cut_value { (&mut record.value, "value.truncated.from") } else { (&mut record.key, "key.truncated.from") };
            if let Some(bytes) = field.as_mut().filter(|_| excess > 0) {
                let original = bytes.len();
                bytes.truncate(original.saturating_sub(excess));
                record.headers.push((name.into(), original.to_string().into_bytes()));
            }
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Json;
    use crate::state::StoreSpec;
    use crate::time::{EventTime, RecordTimestamp};
    use crate::{Processor, ProcessorContext, TopologyBuilder};

    /// A broker that is down: sends are queued, acknowledgements never come.
    struct Outage;

    impl RecordSink for Outage {
        fn send(&mut self, _: OutgoingRecord) -> Result<(), StreamError> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), StreamError> {
            Err(StreamError::Delivery("high-value-alerts [0]: Local: Message timed out".into()))
        }
    }

    /// Flushes for every record, as the mailer does after an email.
    struct Flushing;

    impl Processor for Flushing {
        type In = u64;
        type Out = u64;
        fn process(&mut self, r: Record<u64>, ctx: &mut ProcessorContext<'_, '_, u64>) -> Result<(), ProcessError> {
            ctx.flush()?;
            ctx.forward(r);
            Ok(())
        }
    }

    /// Counts records per key in store `counts`.
    struct Counting;

    impl Processor for Counting {
        type In = u64;
        type Out = u64;
        fn process(&mut self, r: Record<u64>, ctx: &mut ProcessorContext<'_, '_, u64>) -> Result<(), ProcessError> {
            let key = r.key.clone().unwrap_or_default();
            let store = ctx.store("counts")?;
            let count = store.get_json::<u64>(&key)?.unwrap_or(0) + 1;
            store.put_json(&key, &count)?;
            ctx.forward(Record { key: r.key, value: count, time: r.time });
            Ok(())
        }
    }

    /// Collects what a task sends.
    #[derive(Default)]
    struct Collect(Vec<OutgoingRecord>);

    impl RecordSink for Collect {
        fn send(&mut self, record: OutgoingRecord) -> Result<(), StreamError> {
            self.0.push(record);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), StreamError> {
            Ok(())
        }
    }

    fn config() -> TaskConfig {
        TaskConfig {
            input_partitions: 1,
            timestamp_mode: TimestampMode::Payload,
            dead_letter_topic: "t.dlq".into(),
            late_topic: "t.late".into(),
            max_future_ms: None,
            max_record_bytes: crate::record::DEFAULT_MAX_RECORD_BYTES,
            clock: Clock::System,
            globals: BTreeMap::new(),
        }
    }

    fn input(offset: i64, key: &str) -> InputRecord {
        InputRecord {
            position: SourcePosition { topic: "in".into(), partition: 0, offset },
            key: Some(key.as_bytes().to_vec()),
            value: Some(b"1".to_vec()),
            timestamp: RecordTimestamp::CreateTime(0),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_restarted_task_counts_on_from_what_its_store_committed_not_from_what_it_had_in_hand() {
        let b = TopologyBuilder::new("counting");
        b.source("in", Json::<u64>::new(), |_: &u64| EventTime { millis: 0, kind: crate::time::TimestampKind::CreateTime })
            .process("count", &[StoreSpec::in_memory("counts")], || Counting)
            .to("sink", "out", Json::new(), |r: &Record<u64>| r.key.clone());
        let topology = Arc::new(b.build().expect("topology"));
        let backend: Arc<dyn crate::state::KeyValueStore> = Arc::new(crate::state::memory::MemoryStore::new("counts"));
        let stores = BTreeMap::from([("counts".to_owned(), LoggedStore::new(backend.clone(), "counting-counts-changelog".into(), 0))]);
        let mut task = Task::new(topology, TaskId::new(0, 0), stores, config()).expect("task");
        let mut sink = Collect::default();
        for offset in 0..2 {
            task.process(&input(offset, "a"), &mut sink).expect("processed");
        }
        task.drain_changelogs(&mut sink).expect("drained");
        task.commit_stores(|_| Some(2)).expect("committed");
        // Processed after the commit, then aborted: the store must forget it.
        task.process(&input(2, "a"), &mut sink).expect("processed");

        let mut task = task.restarted().expect("restarted");
        assert_eq!(backend.get(b"a").expect("read"), Some(b"2".to_vec()), "the backend keeps only the committed count");
        sink.0.clear();
        task.process(&input(2, "a"), &mut sink).expect("processed again");
        let out: Vec<_> = sink.0.iter().filter(|r| r.topic == "out").map(|r| r.value.clone()).collect();
        assert_eq!(out, vec![Some(b"3".to_vec())], "the record processed again counts once");
        assert_eq!(task.consumed().get("in"), Some(&3));
    }

    #[test]
    fn a_sink_failure_during_a_flush_is_the_sink_error_the_runtime_restarts_on_not_a_processing_bug() {
        let b = TopologyBuilder::new("flushing");
        b.source("in", Json::<u64>::new(), |_: &u64| EventTime { millis: 0, kind: crate::time::TimestampKind::CreateTime })
            .process("flush", &[], || Flushing)
            .to("sink", "out", Json::new(), |_: &Record<u64>| None);
        let topology = Arc::new(b.build().expect("topology"));
        let mut task = Task::new(topology, TaskId::new(0, 0), BTreeMap::new(), config()).expect("task");
        let err = task.process(&input(0, "k"), &mut Outage).expect_err("the flush fails");
        assert!(matches!(err, StreamError::Delivery(_)), "{err:?}");
        assert_eq!(task.consumed().get("in"), None, "not consumed: the record is processed again after the restart");
    }
}
