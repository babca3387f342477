//! `streamcore`: the stream-processing engine the suite's services run on, in the spirit of Kafka Streams.
//!
//! A service describes *what* to compute as a [`Topology`] (source processors, stream processors and sink
//! processors); the [`runtime`] decides *where and when*: it joins a consumer group, turns every assigned input
//! partition of each sub-topology into a [`task`] with its own local state, restores that state from changelog topics, and commits
//! input offsets only after every output the offsets caused has been acknowledged (at-least-once).
//!
//! # Layout
//!
//! Each module implements one concept of the stream-processing chapter and is named after it:
//!
//! | module | concept |
//! |---|---|
//! | [`record`] | an event: key, value, event time, and where it came from |
//! | [`time`] | event time vs. log-append/create time vs. processing time; stream time |
//! | [`codec`] | bytes on the wire to typed events and back; decimals that never pass through floats |
//! | [`topology`] | the processor graph: sources, processors, sinks; `describe()` as text and Mermaid |
//! | [`processor`] | the lifecycle trait for stateful processors and the context they see |
//! | [`state`] | local state: key-value stores in memory or RocksDB, changelogs, checkpoints, restore |
//! | [`table`] | the stream-table duality: tables materialized from topics, their changes as a stream, joins |
//! | [`stats`] | running statistics per key (count, mean, variance) in exact decimals |
//! | [`task`] | one task per sub-topology and input partition: the unit of parallelism, owning its state |
//! | [`task_id`] | a task's name, `<sub-topology>_<partition>` as Kafka Streams prints it |
//! | [`runtime`] | the consumer group, rebalances, commits, dead letters, graceful shutdown |
//! | [`partition`] | where a key lands: Kafka's murmur2 partitioner |
//! | [`query`] | interactive queries: reading tasks' committed local state from HTTP handlers |
//! | [`routing`] | which instance owns which key, for queries answered by the owner and lists gathered from all |
//! | [`stale`] | stale reads: a query answered from a standby replica, marked with how far behind it is |
//! | [`http`] | the endpoints every service shares: health, readiness, metrics, topology |
//! | [`service`] | a service process: its runtimes, its HTTP server, one graceful shutdown |
//! | [`money`] | amounts with currencies in exact decimals, and conversion rates |
//! | [`metrics`] | Prometheus metrics of the engine |
//! | [`testkit`] | an in-memory test driver (Kafka Streams' `TopologyTestDriver`), no broker needed |
//! | [`window`] | windows: tumbling, hopping, calendar days in a time zone; window store; grace, late records, emit modes |

pub mod codec;
pub mod error;
pub mod http;
pub mod metrics;
pub mod money;
pub mod partition;
pub mod processor;
pub mod query;
pub mod record;
pub mod routing;
pub mod runtime;
pub mod service;
pub mod stale;
pub mod state;
pub mod stats;
pub mod table;
pub mod task;
pub mod task_id;
pub mod testkit;
pub mod time;
pub mod topic_names;
pub mod topology;
pub mod window;

pub use error::{ProcessError, StreamError};
pub use processor::{Processor, ProcessorContext, RecordSink};
pub use record::Record;
pub use runtime::{Runtime, StreamsConfig};
pub use topic_names::TopicNames;
pub use topology::{Stream, Topology, TopologyBuilder};
