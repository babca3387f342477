//! Stream processors: the nodes between sources and sinks.
//!
//! Stateless operations (map, filter, flat_map, branch, for_each) are closures on [`crate::Stream`]; anything that
//! keeps state implements [`Processor`], a small lifecycle trait in the shape of Kafka Streams' `Processor`:
//! one required method, defaulted hooks, each called at a documented moment.

use crate::error::ProcessError;
use crate::record::{OutgoingRecord, Record, SourcePosition};
use crate::state::{LoggedStore, StoreError};
use crate::time::StreamTime;
use std::any::Any;
use std::collections::BTreeMap;

/// A type-erased value travelling between nodes.
pub(crate) type Value = Box<dyn Any + Send>;

// ANCHOR: processor
/// A stateful processor.
///
/// One instance exists per task (per input partition), created by the factory given to
/// [`Stream::process`](crate::Stream::process), so instances never share state except through stores.
pub trait Processor: Send + 'static {
    /// The value type it consumes.
    type In: Send + 'static;
    /// The value type it forwards.
    type Out: Clone + Send + 'static;

    /// Called once when the task is created, after its stores were restored and before the first record.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, '_, Self::Out>) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Called for every record, in offset order within the task's partition.
    fn process(&mut self, record: Record<Self::In>, ctx: &mut ProcessorContext<'_, '_, Self::Out>) -> Result<(), ProcessError>;

    /// Called on processing time, about once a second, whether or not records arrive (`ctx.wall_clock()` says
    /// when): the place for work that must happen when input goes quiet, such as closing windows.
    fn punctuate(&mut self, _ctx: &mut ProcessorContext<'_, '_, Self::Out>) -> Result<(), ProcessError> {
        Ok(())
    }

    /// Called when the task is closed (partition revoked, or shutdown), after its last commit.
    fn close(&mut self) {}
}
// ANCHOR_END: processor

/// The per-task state every node of a task shares.
pub(crate) struct TaskState {
    pub(crate) partition: i32,
    pub(crate) stores: BTreeMap<String, LoggedStore>,
    /// The task's stream time: its own, since a task runs one sub-topology, whose records (behind a repartition:
    /// other keys, from every input partition) must not move the time of the sub-topology that wrote them.
    pub(crate) stream_time: StreamTime,
    /// Processing time in milliseconds since the epoch, as of the last punctuation (about a second's resolution:
    /// reading the clock for every record costs more than the precision is worth).
    pub(crate) wall_ms: i64,
    pub(crate) outbox: Vec<OutgoingRecord>,
    pub(crate) position: SourcePosition,
    /// `<service>.late`: records that arrived after their windows closed.
    pub(crate) late_topic: String,
    /// Global tables, shared by every task of the runtime.
    pub(crate) globals: BTreeMap<String, std::sync::Arc<dyn crate::state::KeyValueStore>>,
}

/// What a node emits: to all children (`None`) or to one (`Some(index)`, for `branch`).
pub(crate) struct Emit {
    pub(crate) child: Option<usize>,
    pub(crate) record: Record<Value>,
}

/// Where a task's writes go: the producer in the runtime, in-memory topics in the test driver.
pub trait RecordSink {
    /// Hand a record over for sending.
    fn send(&mut self, record: OutgoingRecord) -> Result<(), crate::StreamError>;
    /// Make everything handed over so far durable: wait until it is acknowledged, or, under exactly-once (where
    /// only a commit makes a write durable), have the runtime commit right after the record in hand.
    fn flush(&mut self) -> Result<(), crate::StreamError>;
}

impl TaskState {
    /// Hand the records the processors wrote to topics (outputs, repartitions, late records) to the sink.
    pub(crate) fn drain_outputs(&mut self, sink: &mut dyn RecordSink) -> Result<(), crate::StreamError> {
        for r in self.outbox.drain(..) {
            sink.send(r)?;
        }
        Ok(())
    }

    /// The record in hand succeeded: its store writes and outputs stay.
    pub(crate) fn keep_record(&mut self) {
        for store in self.stores.values_mut() {
            store.keep();
        }
    }

    /// The record in hand failed: drop the outputs it has not flushed and take back its store writes. Returns
    /// whether any store write was taken back (processors' in-memory views of their stores are then stale).
    pub(crate) fn roll_back_record(&mut self) -> bool {
        self.outbox.clear();
        let mut any = false;
        for store in self.stores.values_mut() {
            any |= store.roll_back();
        }
        any
    }

    /// Hand every store's coalesced changelog writes to the sink: at commit, and when a processor flushes.
    pub(crate) fn drain_changelogs(&mut self, sink: &mut dyn RecordSink) -> Result<(), crate::StreamError> {
        let mut changelog = Vec::new();
        for store in self.stores.values_mut() {
            store.drain_changelog(&mut changelog);
        }
        for r in changelog {
            sink.send(r)?;
        }
        Ok(())
    }
}

/// What a type-erased node sees while it runs.
pub(crate) struct NodeContext<'a> {
    pub(crate) state: &'a mut TaskState,
    pub(crate) emitted: &'a mut Vec<Emit>,
    pub(crate) sink: &'a mut dyn RecordSink,
}

/// What a [`Processor`] sees: its task's stores, stream time, the input position, and a way to forward records.
pub struct ProcessorContext<'a, 'b, Out> {
    pub(crate) node: &'a mut NodeContext<'b>,
    pub(crate) _out: std::marker::PhantomData<fn(Out)>,
}

impl<Out: Send + 'static> ProcessorContext<'_, '_, Out> {
    /// Send a record to every downstream node.
    pub fn forward(&mut self, record: Record<Out>) {
        let Record { key, value, time } = record;
        self.node.emitted.push(Emit { child: None, record: Record { key, value: Box::new(value) as Value, time } });
    }

    /// A store of this task, by name.
    pub fn store(&mut self, name: &str) -> Result<&mut LoggedStore, StoreError> {
        self.node.state.stores.get_mut(name).ok_or_else(|| StoreError::Unknown(name.to_owned()))
    }

    /// A global table's store, by name (read-only: the table's topic is its only writer).
    pub fn global(&self, name: &str) -> Result<&dyn crate::state::KeyValueStore, StoreError> {
        self.node.state.globals.get(name).map(|s| s.as_ref()).ok_or_else(|| StoreError::Unknown(name.to_owned()))
    }

    /// The task's stream time: the highest event time its sub-topology has seen (milliseconds).
    pub fn stream_time(&self) -> Option<i64> {
        self.node.state.stream_time.millis()
    }

    /// Processing time (milliseconds since the epoch) as of the task's last punctuation, so within about a second:
    /// the wall clock, or the test driver's clock.
    pub fn wall_clock(&self) -> i64 {
        self.node.state.wall_ms
    }

    /// Write `record`, which arrived after the window it belongs to had closed, to `<service>.late` (a topology
    /// whose own processors do this says so with [`TopologyBuilder::late_records`](crate::TopologyBuilder::late_records)):
    /// its value as JSON, with the headers `error` (`reason`), `late.operator` (`operator`), `event.time`,
    /// `observed.time` (the time that had closed it) and `source.*` (the input record in hand).
    pub fn send_late<V: serde::Serialize>(
        &mut self,
        record: &crate::Record<V>,
        operator: &str,
        reason: String,
        observed: i64,
    ) -> Result<(), ProcessError> {
        let value = serde_json::to_vec(&record.value).map_err(|e| ProcessError::Fatal(format!("encoding a late record: {e}")))?;
        let pos = &self.node.state.position;
        let header = |k: &str, v: String| (k.to_owned(), v.into_bytes());
        let late = OutgoingRecord {
            topic: self.node.state.late_topic.clone(),
            partition: None,
            key: record.key.as_ref().map(|k| k.as_bytes().to_vec()),
            value: Some(value),
            headers: vec![
                header("error", reason),
                header(crate::window::aggregate::LATE_OPERATOR_HEADER, operator.to_owned()),
                header("event.time", record.time.millis.to_string()),
                header("observed.time", observed.to_string()),
                header("source.topic", pos.topic.clone()),
                header("source.partition", pos.partition.to_string()),
                header("source.offset", pos.offset.to_string()),
            ],
            timestamp: None,
        };
        self.node.state.outbox.push(late);
        Ok(())
    }

    /// The input record being processed: topic, partition, offset.
    pub fn position(&self) -> &SourcePosition {
        &self.node.state.position
    }

    /// The task's partition.
    pub fn partition(&self) -> i32 {
        self.node.state.partition
    }

    /// Send this task's store writes and sink outputs so far, and wait until the broker acknowledged them.
    ///
    /// For side effects outside Kafka (an email): record the effect in a store, then `flush`, so the record that
    /// says "done" is durable as soon as possible after the effect. Costs a round trip; use it sparingly.
    pub fn flush(&mut self) -> Result<(), ProcessError> {
        let sink = |e| ProcessError::Sink(Box::new(e));
        self.node.state.drain_outputs(self.node.sink).map_err(sink)?;
        self.node.state.drain_changelogs(self.node.sink).map_err(sink)?;
        self.node.sink.flush().map_err(sink)
    }
}
