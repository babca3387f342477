//! The processor topology: a graph of *source* processors (read a topic, decode, take the event time), stream
//! *processors* (stateless closures or stateful [`Processor`]s with stores), and *sink* processors (encode, key,
//! write a topic).
//!
//! The graph is built once with a typed, fluent API ([`TopologyBuilder`], [`Stream`]) and instantiated once per
//! task, so each input partition gets its own processor instances and stores. Between nodes, values travel
//! type-erased; the typed API guarantees each node gets the type it was built for.

mod describe;
pub(crate) mod nodes;

use crate::codec::{Deserializer, Serializer};
use crate::error::{ProcessError, StreamError};
use crate::processor::{Processor, Value};
use crate::record::{InputRecord, Record};
use crate::state::StoreSpec;
use crate::table::{GlobalJoin, GlobalSpec, GlobalTable, KeyFn, Materialize, Table, TableJoin};
use crate::time::{EventTime, TimestampMode};
use crate::window::aggregate::{Aggregator, WindowedAggregator};
use crate::window::{Window, Windowed, WindowedAggregation, Windowing};
use nodes::{downcast, emit, Node, ProcessorNode, StatelessNode};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

/// What a node does, for `describe()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Source { topic: String },
    Processor { op: &'static str },
    Sink { topic: String },
}

type NodeFactory = Arc<dyn Fn() -> Box<dyn Node> + Send + Sync>;
type Cloner = fn(&Value) -> Option<Value>;
pub(crate) type Decoder = Arc<dyn Fn(&InputRecord, TimestampMode) -> Result<Record<Value>, String> + Send + Sync>;

pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) stores: Vec<String>,
    pub(crate) factory: NodeFactory,
    /// Clones this node's output values when it fans out to several children.
    pub(crate) clone_output: Cloner,
    /// The connected part of the graph this node is in (set by `build`).
    pub(crate) subtopology: usize,
}

pub(crate) struct SourceSpec {
    pub(crate) topic: String,
    pub(crate) node: usize,
    pub(crate) decode: Decoder,
    /// A table's source: each key must be on the partition murmur2 gives it, or the task joining that key never
    /// sees it.
    pub(crate) keyed: bool,
}

/// Headers carrying an event time, and its kind, across a repartition topic.
const EVENT_TIME_HEADER: &str = "streamcore.event.time";
const TIME_KIND_HEADER: &str = "streamcore.event.time.kind";

/// A built topology: immutable, shared by every task.
pub struct Topology {
    pub(crate) name: String,
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) sources: Vec<SourceSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    pub(crate) internal_topics: Vec<String>,
    pub(crate) subtopologies: usize,
    /// The sub-topology each store (in `stores` order) belongs to: a store is one task's state.
    pub(crate) store_subtopologies: Vec<usize>,
    pub(crate) late_records: bool,
    pub(crate) partition_counts: Vec<(String, i32)>,
    pub(crate) globals: Vec<GlobalSpec>,
}

impl Topology {
    /// The application id: consumer group, and prefix of every internal topic (changelogs, repartition topics).
    /// Running the same topology under a new id reprocesses its input from the start.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Topics read by source processors, internal repartition topics included.
    pub fn source_topics(&self) -> Vec<&str> {
        self.sources.iter().map(|s| s.topic.as_str()).collect()
    }
    /// Source topics the user provides: every source that is not an internal repartition topic or a topic this
    /// topology writes itself (a later sub-topology reading an earlier one's output).
    pub fn external_source_topics(&self) -> Vec<&str> {
        self.sources.iter().map(|s| s.topic.as_str()).filter(|t| self.writer_of(t).is_none()).collect()
    }
    /// How many sub-topologies it has: parts of the graph that meet only through topics, each run by tasks of its
    /// own (one per partition of its sources).
    pub fn subtopologies(&self) -> usize {
        self.subtopologies
    }
    /// The sub-topology that reads `topic`.
    pub(crate) fn subtopology_of(&self, topic: &str) -> Option<usize> {
        self.source_for(topic).map(|s| self.nodes[s.node].subtopology)
    }
    /// The source topics of sub-topology `subtopology`: its task `<subtopology>_p` reads partition p of each.
    pub(crate) fn sources_of(&self, subtopology: usize) -> Vec<&str> {
        self.sources.iter().filter(|s| self.nodes[s.node].subtopology == subtopology).map(|s| s.topic.as_str()).collect()
    }
    /// Each sub-topology's first source, in sub-topology order: the topics the consumer group assigns (see the
    /// runtime's `rebalance`). Every sub-topology has a source, since every other node has a parent.
    pub(crate) fn lead_topics(&self) -> Vec<&str> {
        (0..self.subtopologies).filter_map(|st| self.sources_of(st).first().copied()).collect()
    }
    /// The stores of sub-topology `subtopology`: what each of its tasks restores.
    pub(crate) fn stores_of(&self, subtopology: usize) -> Vec<StoreSpec> {
        self.stores.iter().zip(&self.store_subtopologies).filter(|(_, st)| **st == subtopology).map(|(s, _)| s.clone()).collect()
    }
    /// The sub-topology store `name` belongs to.
    pub fn store_subtopology(&self, name: &str) -> Option<usize> {
        self.stores.iter().position(|s| s.name == name).map(|i| self.store_subtopologies[i])
    }
    /// The sub-topology whose sink writes `topic`, if this topology writes it.
    pub(crate) fn writer_of(&self, topic: &str) -> Option<usize> {
        self.nodes.iter().find(|n| matches!(&n.kind, NodeKind::Sink { topic: t } if t == topic)).map(|n| n.subtopology)
    }
    /// Repartition topics `<application-id>-<name>-repartition`, created by the runtime.
    pub fn internal_topics(&self) -> &[String] {
        &self.internal_topics
    }
    /// Topics written by sink processors (not internal ones).
    pub fn sink_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Sink { topic } if !self.internal_topics.contains(topic) => Some(topic.as_str()),
                _ => None,
            })
            .collect();
        topics.dedup();
        topics
    }
    /// The stores the topology declares.
    pub fn stores(&self) -> &[StoreSpec] {
        &self.stores
    }
    /// The global tables: read in full by every instance.
    pub(crate) fn global_tables(&self) -> &[GlobalSpec] {
        &self.globals
    }
    /// Source topics materialized as tables: only the latest value per key matters, so they should be compacted.
    pub fn table_topics(&self) -> Vec<&str> {
        let is_table = |n: &usize| matches!(self.nodes[*n].kind, NodeKind::Processor { op: "table" });
        self.sources.iter().filter(|s| self.nodes[s.node].children.iter().any(is_table)).map(|s| s.topic.as_str()).collect()
    }
    /// Topics of global tables.
    pub fn global_topics(&self) -> Vec<&str> {
        self.globals.iter().map(|g| g.topic.as_str()).collect()
    }
    /// The partition count the topology requires for `topic`, if it fixed one.
    pub fn required_partitions(&self, topic: &str) -> Option<i32> {
        self.partition_counts.iter().find(|(t, _)| t == topic).map(|(_, n)| *n)
    }
    /// Whether it has windowed operations, whose late records go to `<service>.late`.
    pub fn has_late_records(&self) -> bool {
        self.late_records
    }
    pub(crate) fn source_for(&self, topic: &str) -> Option<&SourceSpec> {
        self.sources.iter().find(|s| s.topic == topic)
    }
}

struct Graph {
    name: String,
    nodes: Vec<NodeSpec>,
    sources: Vec<SourceSpec>,
    stores: Vec<StoreSpec>,
    internal: Vec<String>,
    errors: Vec<String>,
    late_records: bool,
    partition_counts: Vec<(String, i32)>,
    globals: Vec<GlobalSpec>,
}

impl Graph {
    fn add(
        &mut self,
        name: &str,
        kind: NodeKind,
        parent: Option<usize>,
        stores: Vec<String>,
        factory: NodeFactory,
        clone_output: Cloner,
    ) -> usize {
        if self.nodes.iter().any(|n| n.name == name) {
            self.errors.push(format!("two nodes are named {name:?}"));
        }
        let id = self.nodes.len();
        self.nodes.push(NodeSpec {
            name: name.to_owned(),
            kind,
            parents: parent.into_iter().collect(),
            children: Vec::new(),
            stores,
            factory,
            clone_output,
            subtopology: 0,
        });
        if let Some(p) = parent {
            self.nodes[p].children.push(id);
        }
        id
    }
}

impl Graph {
    /// A source processor named `name` reading `topic` with `decode`: it passes each decoded record on.
    fn add_source(&mut self, name: &str, topic: &str, decode: Decoder, clone_output: Cloner) -> usize {
        let factory: NodeFactory = Arc::new(|| Box::new(StatelessNode::forward_all()));
        let node = self.add(name, NodeKind::Source { topic: topic.to_owned() }, None, Vec::new(), factory, clone_output);
        if self.sources.iter().any(|s| s.topic == topic) {
            self.errors.push(format!("topic {topic:?} has two sources"));
        }
        self.sources.push(SourceSpec { topic: topic.to_owned(), node, decode, keyed: false });
        node
    }
}

/// The internal topic `Stream::repartition(name, ..)` writes through: `<application-id>-<name>-repartition`.
pub fn repartition_topic(application_id: &str, name: &str) -> String {
    format!("{application_id}-{name}-repartition")
}

/// A branch predicate.
pub type Predicate<V> = Box<dyn Fn(&Record<V>) -> bool + Send + Sync>;

/// Builds a [`Topology`].
pub struct TopologyBuilder {
    graph: Rc<RefCell<Graph>>,
}

/// A stream of records with values of type `V`: a handle on one node of the graph being built.
pub struct Stream<V> {
    graph: Rc<RefCell<Graph>>,
    node: usize,
    _v: PhantomData<fn() -> V>,
}

fn clone_as<V: Clone + Send + 'static>(v: &Value) -> Option<Value> {
    v.downcast_ref::<V>().map(|v| Box::new(v.clone()) as Value)
}

impl TopologyBuilder {
    /// A builder for the topology of application `application_id` (by default a service's name).
    pub fn new(application_id: impl Into<String>) -> Self {
        TopologyBuilder {
            graph: Rc::new(RefCell::new(Graph {
                name: application_id.into(),
                nodes: Vec::new(),
                sources: Vec::new(),
                stores: Vec::new(),
                internal: Vec::new(),
                errors: Vec::new(),
                late_records: false,
                partition_counts: Vec::new(),
                globals: Vec::new(),
            })),
        }
    }

    /// A source processor: reads `topic`, decodes values with `codec`, and takes the event time from the payload
    /// with `event_time` (or from the record timestamp, when the runtime is told `--timestamp record`).
    /// Undecodable records go to the dead-letter topic.
    pub fn source<V, D, T>(&self, topic: &str, codec: D, event_time: T) -> Stream<V>
    where
        V: Clone + Send + 'static,
        D: Deserializer<V> + 'static,
        T: Fn(&V) -> EventTime + Send + Sync + 'static,
    {
        let decode: Decoder = Arc::new(move |input: &InputRecord, mode: TimestampMode| {
            let key = match &input.key {
                Some(k) => Some(String::from_utf8(k.clone()).map_err(|_| "key is not UTF-8".to_owned())?),
                None => None,
            };
            let bytes = input.value.as_deref().ok_or_else(|| "value is null".to_owned())?;
            let value = codec.deserialize(bytes)?;
            let time = match mode {
                TimestampMode::Payload => event_time(&value),
                TimestampMode::Record => input.timestamp.as_event_time().ok_or_else(|| "record has no timestamp".to_owned())?,
            };
            Ok(Record { key, value: Box::new(value) as Value, time })
        });
        let node = self.graph.borrow_mut().add_source(&format!("{topic}-source"), topic, decode, clone_as::<V>);
        Stream { graph: self.graph.clone(), node, _v: PhantomData }
    }

    /// A table materialized from `topic` (normally compacted) into `store`: the latest value per key, a null value
    /// deleting the key (see [`crate::table`]). Records without a key are dead-lettered.
    pub fn table<V, D>(&self, topic: &str, codec: D, store: StoreSpec) -> Table<V>
    where
        V: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
        D: Deserializer<V> + 'static,
    {
        let decode: Decoder = Arc::new(move |input: &InputRecord, _mode: TimestampMode| {
            let key = match &input.key {
                Some(k) => Some(String::from_utf8(k.clone()).map_err(|_| "key is not UTF-8".to_owned())?),
                None => return Err("a table record needs a key".to_owned()),
            };
            let value: Option<V> = input.value.as_deref().map(|b| codec.deserialize(b)).transpose()?;
            // A table update has no event time of its own: it takes effect when it is processed.
            let time = input.timestamp.as_event_time().unwrap_or(EventTime { millis: 0, kind: crate::time::TimestampKind::CreateTime });
            Ok(Record { key, value: Box::new(value) as Value, time })
        });
        let node = self.graph.borrow_mut().add_source(&format!("{topic}-source"), topic, decode, clone_as::<Option<V>>);
        if let Some(source) = self.graph.borrow_mut().sources.last_mut() {
            source.keyed = true;
        }
        let updates: Stream<Option<V>> = Stream { graph: self.graph.clone(), node, _v: PhantomData };
        let name = store.name.clone();
        let changes =
            updates.process_as(&format!("{}-table", store.name), "table", std::slice::from_ref(&store), move || Materialize::<V> {
                store: name.clone(),
                _v: PhantomData,
            });
        Table { store, changes }
    }

    /// A global table of `topic` in store `store`: every instance reads all its partitions before processing and
    /// keeps it current (see [`crate::table`]). Created empty (compacted) when the topic does not exist.
    pub fn global_table<V, D>(&self, topic: &str, codec: D, store: &str) -> GlobalTable<V>
    where
        D: Deserializer<V> + 'static,
    {
        let mut g = self.graph.borrow_mut();
        if g.globals.iter().any(|x| x.store == store || x.topic == topic) || g.stores.iter().any(|s| s.name == store) {
            g.errors.push(format!("global table {store:?} ({topic}) is declared twice"));
        }
        g.globals.push(GlobalSpec { topic: topic.to_owned(), store: store.to_owned() });
        GlobalTable { store: store.to_owned(), codec: Arc::new(codec) }
    }

    /// Declare that a processor of this topology writes to `<service>.late` itself
    /// ([`ProcessorContext::send_late`](crate::ProcessorContext::send_late)), so the topic is created; windowed
    /// aggregations declare it on their own.
    pub fn late_records(&self) {
        self.graph.borrow_mut().late_records = true;
    }

    /// Create the sink topic `topic` with `partitions` partitions instead of the input's count, and refuse to run
    /// if it exists with another: how a sub-topology that needs to see every record in one task (a global top-10) gets
    /// a single-partition topic.
    pub fn topic_partitions(&self, topic: &str, partitions: i32) {
        self.graph.borrow_mut().partition_counts.push((topic.to_owned(), partitions));
    }

    /// Finish: the topology, or what is wrong with it.
    pub fn build(self) -> Result<Topology, StreamError> {
        let graph = Rc::try_unwrap(self.graph)
            .map_err(|_| StreamError::Config("a Stream handle outlived build(); drop stream handles before building".into()))?
            .into_inner();
        if !graph.errors.is_empty() {
            return Err(StreamError::Config(graph.errors.join("; ")));
        }
        if graph.sources.is_empty() {
            return Err(StreamError::Config("the topology has no source".into()));
        }
        let mut nodes = graph.nodes;
        let local: Vec<&str> = graph.stores.iter().map(|s| s.name.as_str()).collect();
        let subtopologies = assign_subtopologies(&mut nodes, &local);
        // Every user of a store is in one sub-topology (the store links them), so the first one tells.
        let store_subtopologies =
            local.iter().map(|store| nodes.iter().find(|n| n.stores.iter().any(|s| s == store)).map_or(0, |n| n.subtopology)).collect();
        Ok(Topology {
            name: graph.name,
            nodes,
            sources: graph.sources,
            stores: graph.stores,
            internal_topics: graph.internal,
            subtopologies,
            store_subtopologies,
            late_records: graph.late_records,
            partition_counts: graph.partition_counts,
            globals: graph.globals,
        })
    }
}

/// Numbers the connected parts of the graph in the order their first node was added; returns how many there are.
/// Repartitioning cuts the graph (its sink and source are not linked), so each part reads its own topics. Nodes
/// that share one of the `local` stores are linked through it, as in Kafka Streams: a table's source and the join
/// that reads its store are one sub-topology, so its tasks hold both (a global table's store links nothing).
fn assign_subtopologies(nodes: &mut [NodeSpec], local: &[&str]) -> usize {
    let users = |store: &str| -> Vec<usize> { (0..nodes.len()).filter(|&i| nodes[i].stores.iter().any(|s| s == store)).collect() };
    let by_store: Vec<Vec<usize>> = local.iter().map(|s| users(s)).collect();
    let mut count = 0;
    let mut seen = vec![false; nodes.len()];
    for first in 0..nodes.len() {
        if seen[first] {
            continue;
        }
        let mut todo = vec![first];
        seen[first] = true;
        while let Some(n) = todo.pop() {
            nodes[n].subtopology = count;
            let sharing = local.iter().zip(&by_store).filter(|(s, _)| nodes[n].stores.iter().any(|x| x == *s)).flat_map(|(_, u)| u);
            let linked: Vec<usize> = nodes[n].parents.iter().chain(&nodes[n].children).chain(sharing).copied().collect();
            for m in linked {
                if !seen[m] {
                    seen[m] = true;
                    todo.push(m);
                }
            }
        }
        count += 1;
    }
    count
}

impl<V: Clone + Send + 'static> Stream<V> {
    fn child<W: Clone + Send + 'static>(&self, name: &str, op: &'static str, stores: Vec<String>, factory: NodeFactory) -> Stream<W> {
        let node = self.graph.borrow_mut().add(name, NodeKind::Processor { op }, Some(self.node), stores, factory, clone_as::<W>);
        Stream { graph: self.graph.clone(), node, _v: PhantomData }
    }

    fn stateless<W, F>(&self, name: &str, op: &'static str, f: F) -> Stream<W>
    where
        W: Clone + Send + 'static,
        F: Fn(Record<V>, &mut Vec<crate::processor::Emit>) -> Result<(), ProcessError> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let factory: NodeFactory = Arc::new(move || {
            let f = f.clone();
            Box::new(StatelessNode::new(move |r: Record<Value>, ctx| f(downcast::<V>(r)?, ctx.emitted)))
        });
        self.child(name, op, Vec::new(), factory)
    }

    /// Transform each value; key and time are kept.
    pub fn map_values<W, F>(&self, name: &str, f: F) -> Stream<W>
    where
        W: Clone + Send + 'static,
        F: Fn(V) -> W + Send + Sync + 'static,
    {
        self.stateless(name, "map_values", move |r, out| {
            emit(out, None, r.with_value_fn(&f));
            Ok(())
        })
    }

    /// Transform each value, or reject the record as invalid (it goes to the dead-letter topic).
    pub fn try_map_values<W, F>(&self, name: &str, f: F) -> Stream<W>
    where
        W: Clone + Send + 'static,
        F: Fn(V) -> Result<W, ProcessError> + Send + Sync + 'static,
    {
        self.stateless(name, "try_map_values", move |r, out| {
            let Record { key, value, time } = r;
            emit(out, None, Record { key, value: f(value)?, time });
            Ok(())
        })
    }

    /// Transform each record, key and time included (re-keying without repartitioning: the new key stays in this task).
    pub fn map<W, F>(&self, name: &str, f: F) -> Stream<W>
    where
        W: Clone + Send + 'static,
        F: Fn(Record<V>) -> Record<W> + Send + Sync + 'static,
    {
        self.stateless(name, "map", move |r, out| {
            emit(out, None, f(r));
            Ok(())
        })
    }

    /// Keep the records for which `predicate` holds.
    pub fn filter<F>(&self, name: &str, predicate: F) -> Stream<V>
    where
        F: Fn(&Record<V>) -> bool + Send + Sync + 'static,
    {
        self.stateless(name, "filter", move |r, out| {
            if predicate(&r) {
                emit(out, None, r);
            }
            Ok(())
        })
    }

    /// Turn each record into zero or more records.
    pub fn flat_map<W, F>(&self, name: &str, f: F) -> Stream<W>
    where
        W: Clone + Send + 'static,
        F: Fn(Record<V>) -> Vec<Record<W>> + Send + Sync + 'static,
    {
        self.stateless(name, "flat_map", move |r, out| {
            for r in f(r) {
                emit(out, None, r);
            }
            Ok(())
        })
    }

    /// Split the stream: each record goes to the first branch whose predicate holds, or nowhere.
    pub fn branch(&self, name: &str, predicates: Vec<Predicate<V>>) -> Vec<Stream<V>> {
        let count = predicates.len();
        let branch: Stream<V> = self.stateless(name, "branch", move |r, out| {
            if let Some(i) = predicates.iter().position(|p| p(&r)) {
                emit(out, Some(i), r);
            }
            Ok(())
        });
        let factory: NodeFactory = Arc::new(|| Box::new(StatelessNode::forward_all()));
        (0..count).map(|i| branch.child(&format!("{name}-{i}"), "branch-output", Vec::new(), factory.clone())).collect()
    }

    /// A side effect per record (logging, metrics); the stream continues unchanged.
    pub fn for_each<F>(&self, name: &str, f: F) -> Stream<V>
    where
        F: Fn(&Record<V>) + Send + Sync + 'static,
    {
        self.stateless(name, "for_each", move |r, out| {
            f(&r);
            emit(out, None, r);
            Ok(())
        })
    }

    /// A stateful processor with access to `stores`; `factory` makes one instance per task.
    pub fn process<P, F>(&self, name: &str, stores: &[StoreSpec], factory: F) -> Stream<P::Out>
    where
        P: Processor<In = V>,
        F: Fn() -> P + Send + Sync + 'static,
    {
        self.process_as(name, "process", stores, factory)
    }

    fn process_as<P, F>(&self, name: &str, op: &'static str, stores: &[StoreSpec], factory: F) -> Stream<P::Out>
    where
        P: Processor<In = V>,
        F: Fn() -> P + Send + Sync + 'static,
    {
        {
            let mut g = self.graph.borrow_mut();
            for s in stores {
                if !g.stores.iter().any(|x| x.name == s.name) {
                    g.stores.push(s.clone());
                }
            }
        }
        let factory: NodeFactory = Arc::new(move || Box::new(ProcessorNode(factory())));
        self.child(name, op, stores.iter().map(|s| s.name.clone()).collect(), factory)
    }

    /// Join each record with its key's entry in `table` (a left join: the joiner gets `None` when there is none).
    /// The stream must be co-partitioned with the table's topic: keyed by the same key (repartition it first
    /// otherwise), with as many partitions. Unkeyed records are dead-lettered.
    pub fn join_table<T, W, F>(&self, name: &str, table: &Table<T>, joiner: F) -> Stream<W>
    where
        T: Clone + Send + serde::de::DeserializeOwned + 'static,
        W: Clone + Send + 'static,
        F: Fn(Record<V>, Option<T>) -> W + Send + Sync + 'static,
    {
        let joiner: Arc<dyn Fn(Record<V>, Option<T>) -> W + Send + Sync> = Arc::new(joiner);
        let store = table.store.name.clone();
        self.process_as(name, "join_table", std::slice::from_ref(&table.store), move || TableJoin {
            store: store.clone(),
            joiner: joiner.clone(),
        })
    }

    /// Join each record with the entry of the global `table` under the key `key` picks (a left join: the joiner
    /// gets `None` when there is none, or when `key` gives none). No co-partitioning needed.
    pub fn join_global<T, W, K, F>(&self, name: &str, table: &GlobalTable<T>, key: K, joiner: F) -> Stream<W>
    where
        T: Send + 'static,
        W: Clone + Send + 'static,
        K: Fn(&Record<V>) -> Option<String> + Send + Sync + 'static,
        F: Fn(Record<V>, Option<T>) -> W + Send + Sync + 'static,
    {
        let key: KeyFn<V> = Arc::new(key);
        let joiner: Arc<dyn Fn(Record<V>, Option<T>) -> W + Send + Sync> = Arc::new(joiner);
        let (store, codec) = (table.store.clone(), table.codec.clone());
        self.process_as(name, "join_global", &[], move || GlobalJoin {
            store: store.clone(),
            codec: codec.clone(),
            key: key.clone(),
            joiner: joiner.clone(),
        })
    }

    /// A sink processor: write each record to `topic`, encoded with `codec`, keyed by `key`.
    pub fn to<S, K>(&self, name: &str, topic: &str, codec: S, key: K)
    where
        S: Serializer<V> + 'static,
        K: Fn(&Record<V>) -> Option<String> + Send + Sync + 'static,
    {
        let (codec, key) = (Arc::new(codec), Arc::new(key));
        let sink_topic = topic.to_owned();
        let factory: NodeFactory = Arc::new(move || {
            let (codec, key, topic) = (codec.clone(), key.clone(), sink_topic.clone());
            Box::new(StatelessNode::new(move |r: Record<Value>, ctx| {
                let r = downcast::<V>(r)?;
                let value = codec.serialize(&r.value).map_err(|e| ProcessError::Fatal(format!("encoding for {topic}: {e}")))?;
                ctx.state.outbox.push(crate::record::OutgoingRecord {
                    topic: topic.clone(),
                    partition: None,
                    key: key(&r).map(String::into_bytes),
                    value: Some(value),
                    headers: Vec::new(),
                    timestamp: None,
                });
                Ok(())
            }))
        });
        self.graph.borrow_mut().add(name, NodeKind::Sink { topic: topic.to_owned() }, Some(self.node), Vec::new(), factory, clone_as::<V>);
    }
}

impl<V> Stream<V>
where
    V: Clone + Send + serde::Serialize + 'static,
{
    /// Aggregate per key and window (see [`crate::window::aggregate`]): `add` folds each record into its windows'
    /// aggregates (`None` for a window's first record), kept in the aggregation's window store. Records after
    /// their windows closed go to `<service>.late`; unkeyed records, and records `add` refuses (`Err` with the
    /// reason, e.g. an overflow), are dead-lettered.
    pub fn aggregate_windowed<A, W, F>(&self, name: &str, aggregation: WindowedAggregation<W>, add: F) -> Stream<Windowed<A>>
    where
        A: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
        W: Windowing,
        F: Fn(Option<A>, &Record<V>, &Window) -> Result<A, String> + Send + Sync + 'static,
    {
        self.graph.borrow_mut().late_records = true;
        let store = aggregation.store.clone();
        let (spec, add, op_name) = (Arc::new(aggregation), Arc::new(add) as Arc<Aggregator<V, A>>, name.to_owned());
        self.process_as(name, "aggregate_windowed", &[store], move || WindowedAggregator::new(op_name.clone(), spec.clone(), add.clone()))
    }
}

impl<V> Stream<V>
where
    V: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    /// Re-key by `key` and *repartition*: write through the internal topic `<application-id>-<name>-repartition`
    /// (as many partitions as the input) and continue from it, so every record with the same new key is processed
    /// by the same task, whatever partition it arrived on. This is how records keyed by something else, or not
    /// keyed at all, still land in the right state. A record without a new key is dead-lettered.
    pub fn repartition<K>(&self, name: &str, key: K) -> Stream<V>
    where
        K: Fn(&Record<V>) -> Option<String> + Send + Sync + 'static,
    {
        let topic = repartition_topic(&self.graph.borrow().name, name);
        let key = Arc::new(key);
        let sink_topic = topic.clone();
        let sink: NodeFactory = Arc::new(move || {
            let (key, topic) = (key.clone(), sink_topic.clone());
            Box::new(StatelessNode::new(move |r: Record<Value>, ctx| {
                let r = downcast::<V>(r)?;
                let k = key(&r).ok_or_else(|| ProcessError::Invalid(format!("no key to repartition by for {topic}")))?;
                let value = serde_json::to_vec(&r.value).map_err(|e| ProcessError::Fatal(format!("encoding for {topic}: {e}")))?;
                ctx.state.outbox.push(crate::record::OutgoingRecord {
                    topic: topic.clone(),
                    partition: None,
                    key: Some(k.into_bytes()),
                    value: Some(value),
                    headers: vec![
                        (EVENT_TIME_HEADER.to_owned(), r.time.millis.to_string().into_bytes()),
                        (TIME_KIND_HEADER.to_owned(), r.time.kind.as_str().as_bytes().to_vec()),
                    ],
                    timestamp: None,
                });
                Ok(())
            }))
        });
        let decode: Decoder = Arc::new(|input: &InputRecord, _mode: TimestampMode| {
            let key = input.key.as_ref().map(|k| String::from_utf8(k.clone())).transpose().map_err(|_| "key is not UTF-8".to_owned())?;
            let bytes = input.value.as_deref().ok_or_else(|| "value is null".to_owned())?;
            let value: V = serde_json::from_slice(bytes).map_err(|e| format!("repartitioned record does not decode: {e}"))?;
            // The event time and its kind travelled in headers.
            let header = |name: &str| input.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok());
            let millis = header(EVENT_TIME_HEADER)
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| "repartitioned record has no event time header".to_owned())?;
            let kind = header(TIME_KIND_HEADER).and_then(crate::time::TimestampKind::parse).unwrap_or(crate::time::TimestampKind::Payload);
            let time = crate::time::EventTime { millis, kind };
            Ok(Record { key, value: Box::new(value) as Value, time })
        });
        let mut g = self.graph.borrow_mut();
        g.add(
            &format!("{name}-repartition-sink"),
            NodeKind::Sink { topic: topic.clone() },
            Some(self.node),
            Vec::new(),
            sink,
            clone_as::<V>,
        );
        let node = g.add_source(&format!("{name}-repartition-source"), &topic, decode, clone_as::<V>);
        g.internal.push(topic);
        Stream { graph: self.graph.clone(), node, _v: PhantomData }
    }
}

impl<V> Record<V> {
    fn with_value_fn<W>(self, f: &impl Fn(V) -> W) -> Record<W> {
        Record { key: self.key, value: f(self.value), time: self.time }
    }
}
