//! The runtime: runs a [`Topology`] against a Kafka cluster, at least once or exactly once.
//!
//! Each of `threads` *stream threads* (`--threads`, default 1) polls its own consumer in the group, so partitions
//! and their tasks spread over the threads as they would over instances; the threads share the metrics, the
//! status and the registry of stores that queries read. Rebalance callbacks (`rebalance`: cooperative, so only
//! the tasks that move stop) create a `Task` per assigned input partition (restoring its stores from their
//! changelogs first) and, for revoked partitions, commit and close their tasks. Each polled record goes to its
//! partition's task; what the task produces goes to an idempotent producer. On the commit interval, on revocation
//! and on shutdown the runtime *commits*, in the order that keeps every guarantee (invariants 1-2,
//! docs/src/invariants.md):
//!
//! 1. send the stores' coalesced changelog writes, flush the producer and check that every record was
//!    acknowledged;
//! 2. commit the input offsets those records came from;
//! 3. apply each store's pending batch with the changelog offset it reached (its checkpoint).
//!
//! Under exactly-once ([`Guarantee::ExactlyOnce`]) steps 1 and 2 are one Kafka transaction instead: see
//! [`guarantee`] for how it commits, aborts and fences.
//!
//! A processor that reports a transient failure ([`ProcessError::Retry`](crate::ProcessError::Retry)) pauses its
//! partition: the record is retried with exponential backoff, later records wait behind it, and no offset is
//! committed past it. The consumer keeps polling meanwhile, so the instance stays in the group.

mod delivery;
mod global;
pub mod guarantee;
mod properties;
mod rebalance;
mod refusal;
mod restore;
pub mod status;
mod topics;

pub use properties::{check_kafka_properties, parse_kafka_properties, parse_kafka_property_options};
pub use topics::{topics_to_create, TopicSpec};

pub use guarantee::Guarantee;
pub use status::{Phase, RuntimeStatus};

use crate::error::StreamError;
use crate::metrics::{Metrics, TopicCounters};
use crate::query::StoreRegistry;
use crate::record::{InputRecord, OutgoingRecord, SourcePosition};
use crate::state::memory::MemoryStore;
use crate::state::rocksdb::RocksDbStore;
use crate::state::{Backend, KeyValueStore, LoggedStore};
use crate::task::{Outcome, Task, TaskConfig};
use crate::time::{Clock, TimestampMode};
use crate::topology::Topology;
use crate::window::aggregate::LATE_OPERATOR_HEADER;
use delivery::{DeliveryTracker, NO_ORIGIN};
use guarantee::{Recovery, CALL_TIMEOUT, TRANSACTION_TIMEOUT};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rebalance::StreamContext;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long to wait at start for source topics to appear (created by a setup job, or by another stage).
const SOURCE_WAIT: Duration = Duration::from_secs(60);

/// One record in this many has its processing time measured.
const LATENCY_SAMPLE: i64 = 64;

/// A thread that ran this long before its clients failed is restarted however often that happened before.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Restarts in a row, each within [`STABLE_RUN`] of the last, before a thread gives up and stops the instance.
const MAX_QUICK_RESTARTS: u32 = 10;

/// How often tasks get their processing-time hook ([`crate::Processor::punctuate`]).
const PUNCTUATION_INTERVAL: Duration = Duration::from_secs(1);

/// How often thread 0 checks that the sources kept their partition count.
const PARTITION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// How far ahead of the wall clock an event time may be, unless configured otherwise: a day.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(86_400);

/// How to run a topology.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// The service name: prefix of the dead-letter topic `<service>.dlq`.
    pub service: String,
    /// Prepended to the dead-letter and late topics' names, as the service prepends it to every topic of its
    /// contract (`--topic-prefix`).
    pub topic_prefix: String,
    /// How far ahead of the wall clock an event time may be; a record further ahead is bad input (a clock or a
    /// typo in the year must not move stream time to the future). `None`: unbounded.
    pub max_future: Option<Duration>,
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Any other librdkafka properties (SASL, TLS, tuning); they override the runtime's defaults, except those its
    /// guarantees rest on ([`check_kafka_properties`]).
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
    /// At-least-once, or exactly-once through transactions.
    pub guarantee: Guarantee,
}

impl StreamsConfig {
    /// Defaults for `service` against `bootstrap`.
    pub fn new(service: &str, bootstrap: &str) -> Self {
        StreamsConfig {
            service: service.to_owned(),
            topic_prefix: String::new(),
            max_future: Some(DEFAULT_MAX_FUTURE),
            bootstrap: bootstrap.to_owned(),
            kafka_properties: Vec::new(),
            state_dir: PathBuf::from("state"),
            commit_interval: Duration::from_secs(1),
            timestamp_mode: TimestampMode::Payload,
            max_retry_backoff: Duration::from_secs(5),
            threads: 1,
            advertised_url: None,
            guarantee: Guarantee::AtLeastOnce,
        }
    }

    /// `<prefix><service>.dlq`.
    pub fn dead_letter_topic(&self) -> String {
        format!("{}{}.dlq", self.topic_prefix, self.service)
    }

    /// `<prefix><service>.late`: records that arrived after their windows closed.
    pub fn late_topic(&self) -> String {
        format!("{}{}.late", self.topic_prefix, self.service)
    }

    fn task_config(&self, globals: &global::GlobalTables, input_partitions: i32) -> TaskConfig {
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

    fn client_config(&self) -> ClientConfig {
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
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5");
        for (k, v) in &self.kafka_properties {
            c.set(k, v);
        }
        c
    }
}

/// Asks a runtime to stop: it finishes the record in hand, commits, closes its stores and returns.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// Ask to stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether stopping was asked for.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A topology ready to run.
pub struct Runtime {
    config: StreamsConfig,
    topology: Arc<Topology>,
    metrics: Metrics,
    status: RuntimeStatus,
    stores: StoreRegistry,
    shutdown: Shutdown,
    /// The input partition count, once known.
    partitions: Arc<AtomicI32>,
    /// The partitions this instance's threads own.
    owned: Arc<Mutex<BTreeSet<i32>>>,
    /// Inputs whose outputs the broker refused, across thread restarts.
    refusals: Arc<refusal::Refusals>,
}

impl Runtime {
    /// Prepare `topology` to run with `config`, registering the engine's metrics in `registry`.
    pub fn new(topology: Topology, config: StreamsConfig, registry: &prometheus::Registry) -> Result<Self, StreamError> {
        check_kafka_properties(&config.kafka_properties).map_err(StreamError::Config)?;
        let metrics = Metrics::new(registry, topology.name()).map_err(|e| StreamError::Config(format!("metrics: {e}")))?;
        Ok(Runtime {
            config: config.clone(),
            topology: Arc::new(topology),
            metrics,
            status: RuntimeStatus::new(config.threads),
            stores: StoreRegistry::default(),
            shutdown: Shutdown::default(),
            partitions: Arc::new(AtomicI32::new(0)),
            owned: Arc::default(),
            refusals: Arc::default(),
        })
    }

    /// Lifecycle, for `/readyz`.
    pub fn status(&self) -> RuntimeStatus {
        self.status.clone()
    }
    /// Committed local state, for interactive queries.
    pub fn stores(&self) -> StoreRegistry {
        self.stores.clone()
    }
    /// Who owns which key, for forwarding queries (`None` without an advertised URL).
    pub fn routing(&self) -> Option<crate::routing::Routing> {
        self.config.advertised_url.as_ref().map(|url| crate::routing::Routing {
            url: url.clone(),
            store: crate::routing::owners_topic(self.topology.name()),
            stores: self.stores.clone(),
            partitions: self.partitions.clone(),
            local: self.owned.clone(),
        })
    }
    /// A handle that stops the runtime gracefully.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }
    /// The topology it runs.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.clone()
    }

    /// Run on new stream threads; the handle finishes when they all have, with the first failure if any.
    pub fn spawn(self) -> Result<std::thread::JoinHandle<Result<(), StreamError>>, StreamError> {
        std::thread::Builder::new()
            .name(format!("{}-stream", self.config.service))
            .spawn(move || self.run())
            .map_err(|e| StreamError::Config(format!("cannot start the stream thread: {e}")))
    }

    /// Run until shut down or failed: on this thread, or on `threads` stream threads of which this one waits for
    /// the first to finish; a failing thread stops the others.
    pub fn run(self) -> Result<(), StreamError> {
        let status = self.status.clone();
        let result = self.run_threads();
        status.set_stopped();
        if let Err(e) = &result {
            tracing::error!(error = %e, "stream thread stopped");
        }
        result
    }

    fn run_threads(self) -> Result<(), StreamError> {
        let partitions = self.prepare_topics(&self.config.client_config())?;
        self.partitions.store(partitions, Ordering::SeqCst);
        tracing::info!(application_id = self.topology.name(), partitions, threads = self.config.threads, "starting");
        // Read in full once, before any task runs, and shared by every thread.
        let mut tables: Vec<(String, String)> = self.topology.global_tables().iter().map(|g| (g.topic.clone(), g.store.clone())).collect();
        if self.config.advertised_url.is_some() {
            let owners = crate::routing::owners_topic(self.topology.name());
            tables.push((owners.clone(), owners));
        }
        // A global table is the topic itself: if its records expire under the reader, it reads on from the oldest.
        let mut global_cfg = self.restore_config();
        global_cfg.set("auto.offset.reset", "earliest");
        let globals = Arc::new(global::GlobalTables::bootstrap(&global_cfg, &tables, &self.stores)?);
        let instance = self.instance_id()?;
        let threads = self.config.threads.max(1);
        if threads == 1 {
            return self.run_thread(0, &globals, &instance);
        }
        let me = Arc::new(self);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let mut handles = Vec::new();
        for i in 0..threads {
            let (runtime, done, globals, instance) = (me.clone(), done_tx.clone(), globals.clone(), instance.clone());
            let name = format!("{}-stream-{i}", me.config.service);
            let spawned = std::thread::Builder::new().name(name).spawn(move || {
                let result = runtime.run_thread(i, &globals, &instance);
                let _ = done.send(());
                result
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    me.shutdown.trigger();
                    return Err(StreamError::Config(format!("cannot start stream thread {i}: {e}")));
                }
            }
        }
        drop(done_tx);
        // The first thread to finish (failed, or stopped by the shutdown) stops the rest.
        let _ = done_rx.recv();
        me.shutdown.trigger();
        let mut first = Ok(());
        for h in handles {
            let result = h.join().unwrap_or_else(|_| Err(StreamError::Config("a stream thread panicked".into())));
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    /// The configuration of the consumers that only read assigned partitions: restoring and global tables.
    fn restore_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        // librdkafka wants a group id even for assign(); these consumers never join or commit to it.
        c.set("bootstrap.servers", &self.config.bootstrap)
            .set("group.id", format!("{}-restore", self.topology.name()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A restore whose offset fell out of range (retention or DeleteRecords removed records under it) must
            // fail, not jump to the end and checkpoint that with data missing: the restarted restore then finds its
            // checkpoint below the changelog's start, and rebuilds the store.
            .set("auto.offset.reset", "error");
        for (k, v) in &self.config.kafka_properties {
            c.set(k, v);
        }
        c
    }

    /// This instance's identity, kept in its state directory: the same local state is the same member.
    ///
    /// Each thread's consumer joins as the static member `<id>-<thread>` (`group.instance.id`), so an instance that
    /// restarts on its state directory within the session timeout gets the same partitions back without a
    /// rebalance and replays nothing. The cost: a cleanly stopped instance's partitions move only after the session
    /// timeout.
    fn instance_id(&self) -> Result<String, StreamError> {
        let dir = self.config.state_dir.join(self.topology.name());
        let path = dir.join("instance-id");
        let io = |source| StreamError::Store(crate::state::StoreError::Io { path: path.clone(), source });
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id = format!("{}-{nanos:x}-{:x}", self.topology.name(), std::process::id());
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::write(&path, &id).map_err(io)?;
        Ok(id)
    }

    /// Run stream thread `index`. When the Kafka clients fail (a consumer fenced after a broker restart, commits
    /// refused, a producer fenced or in a fatal state, records undeliverable), the thread drops its tasks without
    /// committing, closes its clients and joins the group again with new ones: processing resumes from the committed
    /// offsets and the checkpointed stores, as after a crash but without one. Store, configuration and processing
    /// errors stop the instance, and so does a Kafka failure that repeats [`MAX_QUICK_RESTARTS`] times in a row
    /// without the thread staying up for [`STABLE_RUN`].
    fn run_thread(&self, index: usize, globals: &Arc<global::GlobalTables>, instance: &str) -> Result<(), StreamError> {
        let mut quick_failures = 0;
        loop {
            let started = Instant::now();
            match self.run_thread_once(index, globals, instance) {
                Err(e @ (StreamError::Kafka { .. } | StreamError::Delivery(_))) if !self.shutdown.is_triggered() => {
                    quick_failures = if started.elapsed() >= STABLE_RUN { 1 } else { quick_failures + 1 };
                    if quick_failures > MAX_QUICK_RESTARTS {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, thread = index, "Kafka client failed; rejoining with new clients");
                    self.metrics.thread_restarts.inc();
                    // A pause so that a broker that is down is not hammered by restarts.
                    std::thread::sleep(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    fn run_thread_once(&self, index: usize, globals: &Arc<global::GlobalTables>, instance: &str) -> Result<(), StreamError> {
        let cfg = &self.config;
        let exactly_once = cfg.guarantee == Guarantee::ExactlyOnce;
        let member = format!("{instance}-{index}");
        let sources: Vec<&str> = self.topology.source_topics();
        let app = self.topology.name();

        let changelogs: Vec<String> = self.topology.stores().iter().map(|s| s.changelog_topic(app)).collect();
        let mut producer_cfg = cfg.producer_config();
        if exactly_once {
            producer_cfg.set("transactional.id", &member).set("transaction.timeout.ms", TRANSACTION_TIMEOUT.as_millis().to_string());
        }
        let mut consumer_cfg = ClientConfig::new();
        consumer_cfg
            .set("bootstrap.servers", &cfg.bootstrap)
            .set("group.id", app)
            .set("group.instance.id", &member)
            // librdkafka's default, stated: a transaction's records are seen once it committed, never if it aborted.
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // The group assigns the lead topic's partitions incrementally; the other sources follow (see `rebalance`).
            .set("partition.assignment.strategy", rebalance::ASSIGNMENT_STRATEGY)
            .set("session.timeout.ms", "10000")
            .set("statistics.interval.ms", "5000");
        let restore_cfg = self.restore_config();
        for (k, v) in &cfg.kafka_properties {
            consumer_cfg.set(k, v);
        }
        let producer: BaseProducer<DeliveryTracker> =
            producer_cfg.create_with_context(DeliveryTracker::new(changelogs)).map_err(StreamError::kafka("creating the producer"))?;
        if exactly_once {
            // Fences the previous incarnation of this transactional id and aborts what it left open.
            producer.init_transactions(CALL_TIMEOUT).map_err(StreamError::kafka("initializing transactions"))?;
            producer.begin_transaction().map_err(StreamError::kafka("beginning a transaction"))?;
        }
        let restore_consumer: BaseConsumer = restore_cfg.create().map_err(StreamError::kafka("creating the restore consumer"))?;
        let outputs = topics_to_create(&self.topology, cfg).into_iter().map(|t| t.name);
        let input_partitions = self.partitions.load(Ordering::SeqCst);
        let engine = Arc::new(Engine {
            input_partitions,
            config: cfg.clone(),
            topology: self.topology.clone(),
            metrics: self.metrics.clone(),
            consumed: TopicCounters::new(&self.metrics.consumed, sources.iter().map(|s| s.to_string())),
            produced: TopicCounters::new(&self.metrics.produced, outputs),
            status: self.status.thread(index),
            stores: self.stores.clone(),
            owned: self.owned.clone(),
            advertised: cfg.advertised_url.clone().map(|url| Advertised {
                claim_key: format!("{url}#{index}"),
                url,
                topic: crate::routing::owners_topic(app),
            }),
            producer,
            restore_consumer,
            globals: globals.clone(),
            late_topic: cfg.late_topic(),
            exactly_once,
            refusals: self.refusals.clone(),
            origins: Mutex::default(),
            rewind_requested: AtomicBool::new(false),
            commit_requested: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            state: Mutex::new(EngineState::default()),
        });
        let consumer: BaseConsumer<StreamContext> = consumer_cfg
            .create_with_context(StreamContext { engine: engine.clone() })
            .map_err(StreamError::kafka("creating the consumer"))?;
        consumer.subscribe(&[rebalance::lead_topic(&sources)?]).map_err(StreamError::kafka("subscribing"))?;

        let mut last_commit = Instant::now();
        let mut last_punctuation = Instant::now();
        let mut last_partition_check = Instant::now();
        let mut step = || -> Result<(), StreamError> {
            if let Some(e) = engine.take_fatal() {
                return Err(e);
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => {
                    let input = input_of(&msg);
                    drop(msg);
                    engine.handle(&consumer, input)?;
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {}
            }
            engine.producer.poll(Duration::ZERO);
            if index == 0 {
                // The threads share the global tables; one keeps them current.
                engine.globals.poll()?;
                // And one watches the sources' partition counts.
                if last_partition_check.elapsed() >= PARTITION_CHECK_INTERVAL {
                    topics::check_partitions_unchanged(&consumer, &sources, input_partitions)?;
                    last_partition_check = Instant::now();
                }
            }
            engine.retry_due(&consumer)?;
            if last_punctuation.elapsed() >= PUNCTUATION_INTERVAL {
                engine.punctuate()?;
                last_punctuation = Instant::now();
            }
            if engine.commit_requested.swap(false, Ordering::SeqCst) || last_commit.elapsed() >= cfg.commit_interval {
                engine.commit(&consumer, None)?;
                last_commit = Instant::now();
            }
            Ok(())
        };
        let mut run = || -> Result<(), StreamError> {
            while !self.shutdown.is_triggered() {
                if let Err(e) = step() {
                    engine.recover(&consumer, e, &BTreeSet::new())?;
                }
            }
            tracing::info!("shutting down: committing and closing tasks");
            if let Err(e) = engine.commit(&consumer, None) {
                engine.recover(&consumer, e, &BTreeSet::new())?;
                engine.commit(&consumer, None)?;
            }
            Ok(())
        };
        if let Err(e) = run() {
            engine.abandon();
            return Err(e);
        }
        engine.close_all();
        consumer.unsubscribe();
        drop(consumer);
        engine.take_fatal().map_or(Ok(()), Err)
    }

    /// Checks the sources and creates the internal topics; returns the input partition count.
    fn prepare_topics(&self, client: &ClientConfig) -> Result<i32, StreamError> {
        let probe: BaseConsumer = client.create().map_err(StreamError::kafka("creating a metadata client"))?;
        let sources = self.topology.external_source_topics();
        let existing = topics::wait_for_sources(&probe, &sources, SOURCE_WAIT)?;
        let mut counts = BTreeMap::new();
        for s in &sources {
            let n = existing.get(*s).ok_or_else(|| StreamError::Config(format!("source topic {s} does not exist")))?;
            counts.insert(*s, *n);
        }
        let distinct: BTreeSet<i32> = counts.values().copied().collect();
        let partitions = match distinct.len() {
            1 => distinct.into_iter().next().unwrap_or(1),
            _ => {
                let listed: Vec<String> = counts.iter().map(|(t, n)| format!("{t}: {n}")).collect();
                return Err(StreamError::Config(format!(
                    "source topics are not co-partitioned ({}); a task joins partition p of each, so they need the same partition count",
                    listed.join(", ")
                )));
            }
        };
        let wanted = topics_to_create(&self.topology, &self.config);
        topics::ensure(client, &existing, &wanted, partitions)?;
        Ok(partitions)
    }
}

fn input_of(msg: &BorrowedMessage<'_>) -> InputRecord {
    let headers = msg
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
        .unwrap_or_default();
    InputRecord {
        position: SourcePosition { topic: msg.topic().to_owned(), partition: msg.partition(), offset: msg.offset() },
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        timestamp: msg.timestamp().into(),
        headers,
    }
}

/// A task and what the runtime tracks around it.
struct Slot {
    task: Task,
    /// A record that failed transiently, and when to try it again.
    pending: Option<Pending>,
    /// Records polled behind a pending one, in order.
    backlog: VecDeque<InputRecord>,
    paused: bool,
}

struct Pending {
    input: InputRecord,
    attempts: u32,
    retry_at: Instant,
}

#[derive(Default)]
struct EngineState {
    tasks: BTreeMap<i32, Slot>,
    committed: HashMap<(String, i32), i64>,
    fatal: Option<StreamError>,
}

/// What the poll loop and the rebalance callbacks share.
struct Engine {
    config: StreamsConfig,
    /// The source topics' partition count.
    input_partitions: i32,
    topology: Arc<Topology>,
    metrics: Metrics,
    consumed: TopicCounters,
    produced: TopicCounters,
    status: status::ThreadHandle,
    stores: StoreRegistry,
    /// The partitions every thread of this instance owns.
    owned: Arc<Mutex<BTreeSet<i32>>>,
    /// Where this thread publishes its tasks' partitions, when the instance advertises itself.
    advertised: Option<Advertised>,
    producer: BaseProducer<DeliveryTracker>,
    restore_consumer: BaseConsumer,
    globals: Arc<global::GlobalTables>,
    late_topic: String,
    /// Under exactly-once the producer is transactional and a commit is a transaction's commit.
    exactly_once: bool,
    /// Inputs whose outputs the broker refused (see [`refusal`]).
    refusals: Arc<refusal::Refusals>,
    /// The inputs processed since the last commit; an output's delivery opaque is its input's index here.
    origins: Mutex<Vec<SourcePosition>>,
    /// A refusal was pinned on an input: go back to the last commit, also under at-least-once.
    rewind_requested: AtomicBool,
    /// A processor flushed: under exactly-once, commit right after the record in hand (see [`ProducerSink`]).
    commit_requested: AtomicBool,
    /// The thread failed and dropped its tasks: nothing may be committed any more.
    abandoned: AtomicBool,
    state: Mutex<EngineState>,
}

type GroupConsumer = BaseConsumer<StreamContext>;

/// A stream thread's ownership claims (see [`crate::routing`]).
struct Advertised {
    /// The instance's URL, where queries for the claimed partitions go.
    url: String,
    /// `<application-id>-owners`.
    topic: String,
    /// The claims' key, `<url>#<thread>`: each thread claims its own tasks under its own key, so that its claims,
    /// which only its producer writes, stay in the order it made them (two threads' producers, let alone their
    /// transactions, reach the topic in no set order, and a compacted topic keeps the last record per key).
    claim_key: String,
}

impl Engine {
    fn lock(&self) -> MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_fatal(&self) -> Option<StreamError> {
        self.lock().fatal.take()
    }

    fn fail(&self, e: StreamError) {
        tracing::error!(error = %e, "fatal error in a rebalance callback");
        self.lock().fatal.get_or_insert(e);
    }

    /// Partition p of every source topic, for each p of `partitions`: what the tasks of `partitions` read.
    fn partition_list<'a>(&self, partitions: impl IntoIterator<Item = &'a i32>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            for t in self.topology.source_topics() {
                tpl.add_partition(t, p);
            }
        }
        tpl
    }

    fn handle(&self, consumer: &GroupConsumer, input: InputRecord) -> Result<(), StreamError> {
        self.consumed.inc(&input.position.topic);
        let mut guard = self.lock();
        let EngineState { tasks, .. } = &mut *guard;
        let Some(slot) = tasks.get_mut(&input.position.partition) else {
            tracing::warn!(position = ?input.position, "record for a partition without a task; it will be redelivered to its owner");
            return Ok(());
        };
        if slot.pending.is_some() || !slot.backlog.is_empty() {
            slot.backlog.push_back(input);
            return Ok(());
        }
        self.run_record(consumer, slot, input, 0).map(|_| ())
    }

    /// Processes one record and sends what it produced. Returns false when the record must be retried.
    fn run_record(&self, consumer: &GroupConsumer, slot: &mut Slot, input: InputRecord, attempts: u32) -> Result<bool, StreamError> {
        let verdict = self.refusals.verdict(&input.position);
        let alone = verdict == refusal::Verdict::Alone;
        let mut sink = ProducerSink { engine: self, origin: self.origin(&input.position) };
        match verdict {
            refusal::Verdict::Process => {}
            // Alone: what came before is acknowledged first, so a refusal now is this record's own.
            refusal::Verdict::Alone => self.await_acks()?,
            refusal::Verdict::DeadLetter(reason) => {
                slot.task.refuse(&input, &reason, &mut sink)?;
                if self.refusals.first_dead_letter(&input.position) {
                    self.metrics.dead_lettered.with_label_values(&[&input.position.topic]).inc();
                    self.metrics.refused.with_label_values(&[&input.position.topic]).inc();
                }
                tracing::warn!(position = ?input.position, %reason, "dead-lettered: the broker keeps refusing its output");
                return Ok(true);
            }
            refusal::Verdict::Stuck(reason) => {
                return Err(StreamError::Config(format!(
                    "the dead-letter topic {} refused the dead letter of {}[{}]@{} as well ({reason}): check its max.message.bytes \
                     and timestamp settings",
                    self.config.dead_letter_topic(),
                    input.position.topic,
                    input.position.partition,
                    input.position.offset
                )))
            }
        }
        // Time one record in LATENCY_SAMPLE: reading the clock for every record costs more than the figure is worth.
        let sampled = input.position.offset % LATENCY_SAMPLE == 0;
        let started = sampled.then(Instant::now);
        let outcome = slot.task.process(&input, &mut sink)?;
        if let Some(started) = started {
            self.metrics.process_latency.observe(started.elapsed().as_secs_f64());
        }
        if alone {
            self.await_acks()?;
            self.refusals.cleared(&input.position);
        }
        match outcome {
            Outcome::Processed => Ok(true),
            Outcome::DeadLettered(reason) => {
                self.metrics.dead_lettered.with_label_values(&[&input.position.topic]).inc();
                tracing::warn!(position = ?input.position, %reason, "dead-lettered");
                Ok(true)
            }
            Outcome::Retry(reason) => {
                let attempts = attempts + 1;
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempts.min(16))).min(self.config.max_retry_backoff);
                self.metrics.retried.with_label_values(&[&input.position.topic]).inc();
                tracing::warn!(position = ?input.position, %reason, attempts, ?backoff, "transient failure; will retry");
                if !slot.paused {
                    consumer.pause(&self.partition_list(&[slot.task.partition()])).map_err(StreamError::kafka("pausing"))?;
                    slot.paused = true;
                }
                slot.pending = Some(Pending { input, attempts, retry_at: Instant::now() + backoff });
                Ok(false)
            }
        }
    }

    fn retry_due(&self, consumer: &GroupConsumer) -> Result<(), StreamError> {
        let now = Instant::now();
        let mut guard = self.lock();
        let EngineState { tasks, .. } = &mut *guard;
        for slot in tasks.values_mut() {
            if slot.pending.as_ref().is_none_or(|p| p.retry_at > now) {
                continue;
            }
            let Some(Pending { input, attempts, .. }) = slot.pending.take() else { continue };
            if !self.run_record(consumer, slot, input, attempts)? {
                continue;
            }
            while let Some(next) = slot.backlog.pop_front() {
                if !self.run_record(consumer, slot, next, 0)? {
                    break;
                }
            }
            if slot.pending.is_none() && slot.paused {
                consumer.resume(&self.partition_list(&[slot.task.partition()])).map_err(StreamError::kafka("resuming"))?;
                slot.paused = false;
            }
        }
        Ok(())
    }

    /// Processing-time hooks of every task that is not waiting on a retry (its state must not move meanwhile).
    fn punctuate(&self) -> Result<(), StreamError> {
        let mut guard = self.lock();
        for slot in guard.tasks.values_mut().filter(|s| s.pending.is_none()) {
            slot.task.punctuate(&mut ProducerSink { engine: self, origin: NO_ORIGIN })?;
        }
        Ok(())
    }

    /// Index `position` among the inputs since the last commit: its outputs' delivery opaque.
    fn origin(&self, position: &SourcePosition) -> usize {
        let mut origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        origins.push(position.clone());
        origins.len() - 1
    }

    /// Send `r`, caused by the input at index `origin` of `origins` (or [`NO_ORIGIN`]).
    fn send(&self, r: OutgoingRecord, origin: usize) -> Result<(), StreamError> {
        let mut record: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(&r.topic, origin);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        if !r.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header { key: k, value: Some(v) });
            }
            record = record.headers(headers);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(StreamError::Kafka { context: format!("producing to {}", r.topic), source: e }),
            }
        }
        self.produced.inc(&r.topic);
        if r.topic == self.late_topic {
            let operator = r.headers.iter().find(|(k, _)| k == LATE_OPERATOR_HEADER).map(|(_, v)| String::from_utf8_lossy(v));
            self.metrics.late.with_label_values(&[operator.as_deref().unwrap_or("unknown")]).inc();
        }
        Ok(())
    }

    /// Wait until every record sent so far is acknowledged; any delivery failure fails the wait. A refusal the
    /// broker would repeat is pinned on its input first, and asks for a rewind (see [`refusal`]).
    fn await_acks(&self) -> Result<(), StreamError> {
        self.producer.flush(Duration::from_secs(120)).map_err(StreamError::kafka("waiting for acknowledgements"))?;
        let failures = self.producer.context().take_failures();
        self.pin_refusals(&failures);
        match failures.all.first() {
            None => Ok(()),
            Some(first) if failures.all.len() == 1 => Err(StreamError::Delivery(first.clone())),
            Some(first) => Err(StreamError::Delivery(format!("{} records, the first {first}", failures.all.len()))),
        }
    }

    /// Pin each refusal the broker would repeat on the input that caused it, and ask for a rewind.
    fn pin_refusals(&self, failures: &delivery::Failures) {
        if failures.refused.is_empty() {
            return;
        }
        let origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        let mut pinned = BTreeSet::new();
        for (origin, reason) in &failures.refused {
            if let Some(position) = origins.get(*origin).filter(|_| pinned.insert(*origin)) {
                tracing::warn!(?position, %reason, "the broker refused an output of this input");
                self.refusals.refused(position, reason);
            }
        }
        self.rewind_requested.store(true, Ordering::SeqCst);
    }

    /// The commit protocol (see the module docs), for all tasks or only `only`.
    fn commit(&self, consumer: &GroupConsumer, only: Option<&BTreeSet<i32>>) -> Result<(), StreamError> {
        let started = Instant::now();
        // One transaction holds every task's writes, so it commits them all or none.
        let only = if self.exactly_once { None } else { only };
        let selected = |p: &i32| only.is_none_or(|o| o.contains(p));
        if !self.exactly_once {
            // Outputs first: a refusal found now is rewound (see `refusal`) before the changelogs hold the writes
            // of the records it rewinds, which a rebuilt task would restore and then count again. Under
            // exactly-once those writes would be aborted with the transaction anyway.
            self.await_acks()?;
        }
        for (_, slot) in self.lock().tasks.iter_mut().filter(|(p, _)| selected(p)) {
            slot.task.drain_changelogs(&mut ProducerSink { engine: self, origin: NO_ORIGIN })?;
        }
        self.await_acks()?;
        // Every record sent so far is acknowledged: no delivery report will name these inputs any more.
        self.origins.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut guard = self.lock();
        let EngineState { tasks, committed, .. } = &mut *guard;
        let mut tpl = TopicPartitionList::new();
        let mut advanced = Vec::new();
        for (p, slot) in tasks.iter().filter(|(p, _)| selected(p)) {
            for (topic, &offset) in slot.task.consumed() {
                let key = (topic.clone(), *p);
                if committed.get(&key) != Some(&offset) {
                    tpl.add_partition_offset(topic, *p, Offset::Offset(offset)).map_err(StreamError::kafka("building the commit"))?;
                    advanced.push((key, offset));
                }
            }
        }
        if self.exactly_once {
            if tpl.count() > 0 {
                let group = consumer.group_metadata().ok_or_else(|| StreamError::Config("no consumer group metadata".into()))?;
                self.producer
                    .send_offsets_to_transaction(&tpl, &group, CALL_TIMEOUT)
                    .map_err(StreamError::kafka("adding the offsets to the transaction"))?;
            }
            self.producer.commit_transaction(CALL_TIMEOUT).map_err(StreamError::kafka("committing the transaction"))?;
            self.forget_refusals(&advanced);
            committed.extend(advanced);
            self.producer.begin_transaction().map_err(StreamError::kafka("beginning a transaction"))?;
        } else if tpl.count() > 0 {
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    self.forget_refusals(&advanced);
                    committed.extend(advanced);
                }
                // Cooperative rebalancing keeps tasks processing while the group rebalances, and the coordinator
                // refuses plain offset commits in that window: while the member waits for the new generation
                // (rebalance in progress), or when the commit left just before the member learnt it (illegal
                // generation, unknown member). Nothing is lost by waiting: the next commit carries these offsets,
                // and the stores keep their pending batches until then. A member the group really dropped hears
                // so on its next heartbeat, and its assignment is reported lost (`rebalance`), closing the tasks
                // uncommitted.
                Err(KafkaError::ConsumerCommit(
                    code
                    @ (RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration | RDKafkaErrorCode::UnknownMemberId),
                )) => {
                    tracing::info!(%code, "offsets not committed: the group is rebalancing; the next commit carries them");
                    return Ok(());
                }
                Err(e) => return Err(StreamError::Kafka { context: "committing offsets".into(), source: e }),
            }
        }
        let tracker = self.producer.context();
        for (p, slot) in tasks.iter_mut().filter(|(p, _)| selected(p)) {
            slot.task.commit_stores(|changelog| tracker.next_offset(changelog, *p))?;
        }
        self.metrics.commit_latency.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Committed past these: their refusals are history.
    fn forget_refusals(&self, advanced: &[((String, i32), i64)]) {
        for ((topic, partition), next) in advanced {
            self.refusals.committed(topic, *partition, *next);
        }
    }

    /// Get past a failed step: under exactly-once, abort or retry as [`guarantee::recovery`] says; anything else
    /// (and every error under at-least-once) stops the thread. The tasks of `leaving` (partitions being revoked) are
    /// not rebuilt after an abort.
    fn recover(&self, consumer: &GroupConsumer, e: StreamError, leaving: &BTreeSet<i32>) -> Result<(), StreamError> {
        if self.rewind_requested.swap(false, Ordering::SeqCst) && matches!(e, StreamError::Delivery(_)) {
            // A refusal pinned on an input: go back and process the suspect alone (see `refusal`).
            return self.abort(consumer, &e, leaving);
        }
        if !self.exactly_once {
            return Err(e);
        }
        let mut e = e;
        for attempt in 1..=5 {
            match guarantee::recovery(&e) {
                Recovery::Abort => return self.abort(consumer, &e, leaving),
                Recovery::Retry => {
                    tracing::warn!(error = %e, attempt, "commit outcome unknown; retrying it");
                    match self.commit(consumer, None) {
                        Ok(()) => return Ok(()),
                        Err(again) => e = again,
                    }
                }
                Recovery::Rejoin => return Err(e),
            }
        }
        Err(e)
    }

    /// Go back to the last commit: under exactly-once, abort the open transaction; every task is rebuilt from its
    /// stores (which never saw the uncommitted writes) and the consumer is sought back to the committed offsets.
    /// Under at-least-once the outputs already acknowledged stay, and are written again (a rewind after a refusal).
    fn abort(&self, consumer: &GroupConsumer, cause: &dyn std::fmt::Display, leaving: &BTreeSet<i32>) -> Result<(), StreamError> {
        tracing::warn!(error = %cause, "going back to the last commit; processing again from the committed offsets");
        if self.exactly_once {
            // What is still queued can only be aborted: purged, its delivery reports served here (librdkafka's abort
            // cannot serve them itself, as the client polls its own event queue), and what is in flight awaited, so
            // that the abort finds nothing outstanding. Those reports name their inputs: a refusal that caused this
            // abort is pinned (later sends fail only with the transaction's state).
            self.producer.purge(PurgeConfig::default().queue());
            if let Err(e) = self.producer.flush(CALL_TIMEOUT) {
                tracing::debug!(error = %e, "records still outstanding before the abort");
            }
            self.pin_refusals(&self.producer.context().take_failures());
            self.producer.abort_transaction(CALL_TIMEOUT).map_err(StreamError::kafka("aborting the transaction"))?;
            self.metrics.aborted_transactions.inc();
        } else {
            self.producer.flush(CALL_TIMEOUT).map_err(StreamError::kafka("waiting for acknowledgements"))?;
        }
        self.pin_refusals(&self.producer.context().take_failures());
        self.rewind_requested.store(false, Ordering::SeqCst);
        self.origins.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if self.exactly_once {
            self.producer.begin_transaction().map_err(StreamError::kafka("beginning a transaction"))?;
        }
        let all: BTreeSet<i32> = self.lock().tasks.keys().copied().collect();
        self.remove_tasks(&all);
        let partitions: BTreeSet<i32> = all.difference(leaving).copied().collect();
        if partitions.is_empty() {
            return Ok(());
        }
        let committed = consumer
            .committed_offsets(self.partition_list(&partitions), CALL_TIMEOUT)
            .map_err(StreamError::kafka("reading the committed offsets"))?;
        let mut rewind = TopicPartitionList::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            rewind.add_partition_offset(e.topic(), e.partition(), offset).map_err(StreamError::kafka("building the rewind"))?;
        }
        consumer.seek_partitions(rewind, CALL_TIMEOUT).map_err(StreamError::kafka("seeking to the committed offsets"))?;
        consumer.resume(&committed).map_err(StreamError::kafka("resuming"))?;
        self.assign(&partitions)
    }

    /// Under exactly-once, before a task is restored: wait until the offsets of its partitions are stable, that is
    /// until a previous owner's open transaction committed or aborted, so the changelog is read to where it ended.
    fn await_stable_offsets(&self, consumer: &GroupConsumer, tpl: &TopicPartitionList) -> Result<(), StreamError> {
        if self.exactly_once {
            consumer
                .committed_offsets(tpl.clone(), TRANSACTION_TIMEOUT + CALL_TIMEOUT)
                .map_err(StreamError::kafka("waiting for stable offsets"))?;
        }
        Ok(())
    }

    fn store_dir(&self, spec: &crate::state::StoreSpec, partition: i32) -> PathBuf {
        self.config.state_dir.join(self.topology.name()).join(partition.to_string()).join(&spec.name)
    }

    fn open_store(&self, spec: &crate::state::StoreSpec, partition: i32) -> Result<Arc<dyn KeyValueStore>, StreamError> {
        Ok(match spec.backend {
            Backend::InMemory => Arc::new(MemoryStore::new(spec.name.clone())),
            Backend::RocksDb => Arc::new(RocksDbStore::open(spec.name.clone(), &self.store_dir(spec, partition))?),
        })
    }

    /// Open a store and bring it up to the changelog's end, discarding local data that belongs to another history.
    fn open_restored(&self, spec: &crate::state::StoreSpec, partition: i32) -> Result<Arc<dyn KeyValueStore>, StreamError> {
        let changelog = spec.changelog_topic(self.topology.name());
        let backend = self.open_store(spec, partition)?;
        match restore::restore(&self.restore_consumer, backend.as_ref(), &changelog, partition, &self.metrics)? {
            restore::Restored::Records(_) => Ok(backend),
            restore::Restored::StaleCheckpoint { checkpoint, end } => {
                tracing::warn!(store = %spec.name, partition, checkpoint, end, "local state is outside its changelog (recreated topic, or records deleted below it); rebuilding it from the changelog");
                drop(backend);
                let dir = self.store_dir(spec, partition);
                std::fs::remove_dir_all(&dir).map_err(|source| crate::state::StoreError::Io { path: dir, source })?;
                let backend = self.open_store(spec, partition)?;
                match restore::restore(&self.restore_consumer, backend.as_ref(), &changelog, partition, &self.metrics)? {
                    restore::Restored::Records(_) => Ok(backend),
                    restore::Restored::StaleCheckpoint { .. } => {
                        Err(StreamError::Config(format!("{changelog}[{partition}] moved while restoring")))
                    }
                }
            }
        }
    }

    /// Create tasks for newly assigned partitions, restoring their stores first.
    fn assign(&self, partitions: &BTreeSet<i32>) -> Result<(), StreamError> {
        if partitions.is_empty() {
            // A cooperative rebalance that gave this member nothing new; the first one also makes a standby ready.
            self.status.set_phase(Phase::Running);
            return Ok(());
        }
        self.status.set_phase(Phase::Restoring);
        for &p in partitions {
            if self.lock().tasks.contains_key(&p) {
                continue;
            }
            let mut stores = BTreeMap::new();
            for spec in self.topology.stores() {
                let backend = self.open_restored(spec, p)?;
                let changelog = spec.changelog_topic(self.topology.name());
                self.stores.register(p, backend.clone());
                stores.insert(spec.name.clone(), LoggedStore::new(backend, changelog, p));
            }
            let task = Task::new(self.topology.clone(), p, stores, self.config.task_config(&self.globals, self.input_partitions))?;
            tracing::info!(partition = p, "task created");
            self.lock().tasks.insert(p, Slot { task, pending: None, backlog: VecDeque::new(), paused: false });
        }
        let n = self.lock().tasks.len();
        self.status.set_tasks(n);
        self.metrics.assigned_tasks.set(self.status.runtime().tasks() as i64);
        self.claim(|owned| owned.extend(partitions.iter().copied()))?;
        self.status.set_phase(Phase::Running);
        Ok(())
    }

    /// Change the instance's owned partitions with `change` and, when it advertises itself, publish this thread's.
    fn claim(&self, change: impl FnOnce(&mut BTreeSet<i32>)) -> Result<(), StreamError> {
        change(&mut self.owned.lock().unwrap_or_else(|p| p.into_inner()));
        let Some(advertised) = &self.advertised else { return Ok(()) };
        let partitions = self.lock().tasks.keys().copied().collect();
        let claim = crate::routing::Claim { url: advertised.url.clone(), partitions, at: chrono::Utc::now().timestamp_millis() };
        let value = serde_json::to_vec(&claim).map_err(|e| StreamError::Config(format!("encoding the ownership claim: {e}")))?;
        self.send(
            OutgoingRecord {
                topic: advertised.topic.clone(),
                partition: None,
                key: Some(advertised.claim_key.clone().into_bytes()),
                value: Some(value),
                headers: Vec::new(),
                timestamp: None,
            },
            NO_ORIGIN,
        )
    }

    /// Commit and close the tasks of revoked partitions.
    fn revoke(&self, consumer: &GroupConsumer, partitions: &BTreeSet<i32>) -> Result<(), StreamError> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut committed = self.commit(consumer, Some(partitions));
        if let Err(e) = committed {
            // Under exactly-once an aborted transaction is no loss: the next owner processes again from the
            // committed offsets.
            committed = self.recover(consumer, e, partitions);
        }
        self.remove_tasks(partitions);
        self.metrics.revoked_tasks.inc_by(partitions.len() as u64);
        self.claim(|owned| owned.retain(|p| !partitions.contains(p)))?;
        committed
    }

    /// The group dropped this member and gave `partitions` away, possibly already to another: close their tasks
    /// without committing (under exactly-once, abort the transaction, whose offsets would be refused anyway).
    fn lose(&self, consumer: &GroupConsumer, partitions: &BTreeSet<i32>) -> Result<(), StreamError> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        tracing::warn!(?partitions, "assignment lost: closing its tasks without committing");
        if self.exactly_once {
            self.abort(consumer, &"the assignment was lost", partitions)?;
        } else {
            self.remove_tasks(partitions);
        }
        self.metrics.revoked_tasks.inc_by(partitions.len() as u64);
        self.claim(|owned| owned.retain(|p| !partitions.contains(p)))
    }

    /// After a failure: close every task without committing and release its stores (so a restarted thread can open
    /// them again); the revocation that closing the consumer triggers then commits nothing either.
    fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        let all: BTreeSet<i32> = self.lock().tasks.keys().copied().collect();
        self.remove_tasks(&all);
        // The thread restarts with nothing, so the instance no longer owns these: a query for one of them must go
        // to whoever owns it now (or wait for this thread to get it back), not be answered from nothing with 404.
        self.owned.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| !all.contains(p));
    }

    /// Close the tasks of `partitions` and forget them, committing nothing.
    fn remove_tasks(&self, partitions: &BTreeSet<i32>) {
        let mut guard = self.lock();
        for p in partitions {
            if let Some(mut slot) = guard.tasks.remove(p) {
                slot.task.close();
                for s in slot.task.stores() {
                    self.stores.unregister(s.name(), *p);
                }
                tracing::info!(partition = p, "task closed");
            }
            guard.committed.retain(|(_, cp), _| cp != p);
        }
        let n = guard.tasks.len();
        drop(guard);
        self.status.set_tasks(n);
        self.metrics.assigned_tasks.set(self.status.runtime().tasks() as i64);
    }

    fn close_all(&self) {
        let closed: BTreeSet<i32> = self.lock().tasks.keys().copied().collect();
        self.remove_tasks(&closed);
        // Released on a clean stop, so queries go straight to the next owner.
        if let Err(e) = self.claim(|owned| owned.retain(|p| !closed.contains(p))) {
            tracing::warn!(error = %e, "could not release the partitions' ownership");
        }
        let finished = if self.exactly_once {
            // A new (empty) transaction after it, for the revocation that closing the consumer triggers.
            self.producer
                .commit_transaction(Duration::from_secs(5))
                .and_then(|()| self.producer.begin_transaction())
                .map_err(|e| e.to_string())
        } else {
            self.producer.flush(Duration::from_secs(5)).map_err(|e| e.to_string())
        };
        if let Err(e) = finished {
            tracing::warn!(error = %e, "the last records (the ownership release) were not confirmed");
        }
    }
}

/// Tasks write straight into the producer.
///
/// A processor flushes to make its writes durable before a side effect goes further (the mailer's "sent"
/// record). Acknowledged is durable under at-least-once; under exactly-once a write counts only once its
/// transaction commits, so there a flush asks for a commit right after the record in hand instead (waiting for
/// acknowledgements first would buy nothing: the commit waits for them).
///
/// Each record sent carries `origin`, the index of the input that caused it (see [`refusal`]).
struct ProducerSink<'a> {
    engine: &'a Engine,
    origin: usize,
}

impl crate::processor::RecordSink for ProducerSink<'_> {
    fn send(&mut self, record: OutgoingRecord) -> Result<(), StreamError> {
        self.engine.send(record, self.origin)
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        if self.engine.exactly_once {
            self.engine.commit_requested.store(true, Ordering::SeqCst);
            Ok(())
        } else {
            self.engine.await_acks()
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}
