//! How to run a topology: [`StreamsConfig`], and the Kafka client configurations every thread derives from it.

use super::global;
use super::Guarantee;
use crate::state::budget::MemoryBudget;
use crate::task::TaskConfig;
use crate::time::{Clock, TimestampMode};
use crate::topic_names::TopicNames;
use rdkafka::ClientConfig;
use std::path::PathBuf;
use std::time::Duration;

/// How far ahead of the wall clock an event time may be, unless configured otherwise: a day.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(86_400);

/// How long a producer waits for more records before it sends a batch that is not full (`linger.ms`), by
/// guarantee. librdkafka's default is 5 ms, Kafka Streams' 100 ms.
///
/// Under at-least-once an output is readable once it is sent, so the linger is on every record's path, once per
/// sub-topology (the stock ticker's trade twice: the repartition, then the update), and every commit waits for it
/// twice (the outputs' acknowledgements, then the changelogs'; `streamcore_commit_phase_seconds` showed 9 and 13 ms
/// of a 44 ms commit there with 5 ms). With 1 ms the stock ticker's latency at 4,000 trades/s fell from p50 12 ms
/// and p99 41-58 ms to p50 7 ms and p99 32-34 ms, for 5-8% more CPU per trade on a backlog (README, benchmarks).
/// Under exactly-once an output is readable only when its transaction commits, so a shorter linger buys nothing
/// there, and it cost 14-24% more CPU per trade: it keeps 5 ms. `--kafka-property linger.ms=N` sets another.
pub const fn linger(guarantee: Guarantee) -> Duration {
    match guarantee {
        Guarantee::AtLeastOnce => Duration::from_millis(1),
        Guarantee::ExactlyOnce => Duration::from_millis(5),
    }
}

/// How to run a topology.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// The service name: prefix of the dead-letter topic `<service>.dlq`.
    pub service: String,
    /// How the service names its topics: the dead-letter and late topics are outputs of it (`--topic-prefix`,
    /// `--output-prefix`).
    pub topics: TopicNames,
    /// How far ahead of the wall clock an event time may be; a record further ahead is bad input (a clock or a
    /// typo in the year must not move stream time to the future). `None`: unbounded.
    pub max_future: Option<Duration>,
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Any other librdkafka properties (SASL, TLS, tuning); they override the runtime's defaults, except those its
    /// guarantees rest on ([`check_kafka_properties`](super::check_kafka_properties)).
    pub kafka_properties: Vec<(String, String)>,
    /// Where RocksDB stores live: `<state_dir>/<application-id>/<partition>/<store>`.
    pub state_dir: PathBuf,
    /// How often to commit.
    pub commit_interval: Duration,
    /// Which time decides results.
    pub timestamp_mode: TimestampMode,
    /// The longest wait between retries of a record that failed transiently.
    pub max_retry_backoff: Duration,
    /// Stream threads, each with its own consumer in the group, producer and tasks.
    pub threads: usize,
    /// This instance's HTTP address as other instances reach it; when set, ownership is published and queries
    /// for keys owned elsewhere are forwarded (see [`crate::routing`]).
    pub advertised_url: Option<String>,
    /// Standby replicas kept of each stateful task on other instances (see `standby`); needs `advertised_url`.
    pub standby_replicas: usize,
    /// At-least-once, or exactly-once through transactions.
    pub guarantee: Guarantee,
    /// The memory all RocksDB stores of the instance share (see [`crate::state::budget`]).
    pub state_memory: MemoryBudget,
}

impl StreamsConfig {
    /// Defaults for `service` against `bootstrap`.
    pub fn new(service: &str, bootstrap: &str) -> Self {
        StreamsConfig {
            service: service.to_owned(),
            topics: TopicNames::default(),
            max_future: Some(DEFAULT_MAX_FUTURE),
            bootstrap: bootstrap.to_owned(),
            kafka_properties: Vec::new(),
            state_dir: PathBuf::from("state"),
            commit_interval: Duration::from_secs(1),
            timestamp_mode: TimestampMode::Payload,
            max_retry_backoff: Duration::from_secs(5),
            threads: 1,
            standby_replicas: 0,
            advertised_url: None,
            guarantee: Guarantee::AtLeastOnce,
            state_memory: MemoryBudget::DEFAULT,
        }
    }

    /// `<prefixes><service>.dlq`.
    pub fn dead_letter_topic(&self) -> String {
        self.topics.output(&format!("{}.dlq", self.service))
    }

    /// `<prefixes><service>.late`: records that arrived after their windows closed.
    pub fn late_topic(&self) -> String {
        self.topics.output(&format!("{}.late", self.service))
    }

    pub(super) fn task_config(&self, globals: &global::GlobalTables, input_partitions: i32) -> TaskConfig {
        TaskConfig {
            input_partitions,
            timestamp_mode: self.timestamp_mode,
            dead_letter_topic: self.dead_letter_topic(),
            late_topic: self.late_topic(),
            max_future_ms: self.max_future.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            max_record_bytes: self.max_record_bytes(),
            clock: Clock::System,
            globals: globals.stores().clone(),
        }
    }

    /// The producer's `message.max.bytes`: the user's, or librdkafka's default.
    pub fn max_record_bytes(&self) -> usize {
        self.kafka_properties
            .iter()
            .rev()
            .find(|(k, _)| k == "message.max.bytes")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(crate::record::DEFAULT_MAX_RECORD_BYTES)
    }

    pub(super) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.kafka_properties {
            c.set(k, v);
        }
        c
    }

    /// A producer's configuration as the runtime's own: idempotent, and partitioning by murmur2 of the key like
    /// the Java client, so a record a service writes outside the topology (a command from its API) lands on the
    /// partition the topology's own records for that key use. The user's properties override the defaults.
    ///
    /// It lingers as [`linger`] says for the guarantee before sending a batch that is not full.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", linger(self.guarantee).as_millis().to_string());
        for (k, v) in &self.kafka_properties {
            c.set(k, v);
        }
        c
    }
}
