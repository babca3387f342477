//! The runtime: runs a [`Topology`] against a Kafka cluster, at least once or exactly once.
//!
//! Each of `threads` *stream threads* (`--threads`, default 1) polls its own consumer in the group, so tasks spread
//! over the threads as they would over instances; the threads share the metrics, the status and the registry of
//! stores that queries read. A task is one sub-topology's work on one partition of its sources (`0_3`, `1_0`; see
//! [`TaskId`]), and sub-topologies may have different partition counts (`copartition`).
//! Rebalance callbacks (cooperative, so only the tasks that move stop) start a `Task` per assigned task, which
//! restores its stores from their changelogs on a thread of its own while the other tasks go on processing, and,
//! for revoked tasks, commit and close them. Each polled record goes to its partition's task; what the task produces goes to an idempotent producer
//! (transactional under exactly-once), and the thread commits on the commit interval, on revocation and on
//! shutdown.
//!
//! The runtime's parts, one role per file, named as Kafka Streams names them where it has the same part:
//!
//! | file               | role                                                                               |
//! |--------------------|------------------------------------------------------------------------------------|
//! | `mod.rs`           | [`Runtime`]: checks the topics, reads the global tables, starts the stream threads |
//! | `config`           | [`StreamsConfig`] and the Kafka client configurations derived from it              |
//! | `copartition`      | each sub-topology's partition count: its tasks, and the topics created for it      |
//! | `stream_thread`    | one thread's clients, its poll loop, and its restarts after client failures        |
//! | `engine`           | what a thread's poll loop and its rebalance callbacks share: tasks, clients        |
//! | `rebalance`        | the group's assignment (a lead topic per sub-topology, cooperative) into tasks     |
//! | `task_manager`     | tasks created when assigned, committed and closed when revoked                     |
//! | `state_updater`    | restoring as a phase of its own: new tasks restore while the others process        |
//! | `restore`          | a task's stores brought up to their changelogs' end before it processes            |
//! | `standby`          | standby replicas: warm copies of other instances' tasks, promoted on a failover    |
//! | `task_executor`    | each record through its task; retries of transient failures                        |
//! | `record_collector` | outputs sent to the producer, each tracked to the input that caused it             |
//! | `delivery`         | the producer's delivery reports: failures, and the changelog offsets reached       |
//! | `acks`             | waiting for every delivery report, served as each arrives                          |
//! | `refusal`          | inputs whose outputs the broker refuses: isolated, then dead-lettered              |
//! | `commit`           | the commit protocol, and going back to the last commit when a step fails           |
//! | `guarantee`        | at-least-once or exactly-once: how a transaction commits, aborts and fences        |
//! | `ownership`        | the tasks this instance owns, claimed for query routing                            |
//! | `global`           | global tables, read in full before any task runs and kept current                  |
//! | `partition_end`    | where a reader of assigned partitions stands, and where the partitions end         |
//! | `topics`           | source checks and the internal topics created at start-up                          |
//! | `properties`       | the user's librdkafka properties, and those the guarantees forbid overriding       |
//! | `status`           | the lifecycle `/readyz` reports                                                    |

mod acks;
mod commit;
mod config;
mod copartition;
mod delivery;
mod engine;
mod global;
pub mod guarantee;
mod ownership;
mod partition_end;
mod properties;
mod rebalance;
mod record_collector;
mod refusal;
mod rejoin;
mod restore;
mod standby;
mod state_updater;
pub mod status;
mod stream_thread;
mod task_executor;
mod task_manager;
mod topics;

pub use config::{linger, StreamsConfig, DEFAULT_MAX_FUTURE};
pub use copartition::Partitions;
pub use properties::{check_kafka_properties, parse_kafka_properties, parse_kafka_property_options};
pub use topics::{topics_to_create, TopicSpec};

pub use guarantee::Guarantee;
pub use status::{Phase, RuntimeStatus};

use crate::error::StreamError;
use crate::metrics::Metrics;
use crate::query::StoreRegistry;
use crate::state::budget::StateMemory;
use crate::task_id::TaskId;
use crate::topology::Topology;
use rdkafka::consumer::BaseConsumer;
use rdkafka::ClientConfig;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long to wait at start for source topics to appear (created by a setup job, or by another application).
const SOURCE_WAIT: Duration = Duration::from_secs(60);

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

/// Sleep for `period`, or until `stop` holds; whether it did.
fn wait(period: Duration, stop: &dyn Fn() -> bool) -> bool {
    let until = Instant::now() + period;
    while Instant::now() < until {
        if stop() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop()
}

/// A topology ready to run.
pub struct Runtime {
    config: StreamsConfig,
    topology: Arc<Topology>,
    metrics: Metrics,
    status: RuntimeStatus,
    stores: StoreRegistry,
    shutdown: Shutdown,
    /// Each sub-topology's partition count, once known.
    partitions: Arc<OnceLock<Partitions>>,
    /// The tasks this instance's threads own.
    owned: Arc<Mutex<BTreeSet<TaskId>>>,
    /// Inputs whose outputs the broker refused, across thread restarts.
    refusals: Arc<refusal::Refusals>,
    /// The standby replicas this instance keeps.
    standbys: standby::Standbys,
    /// The memory budget all RocksDB stores of this instance share.
    memory: StateMemory,
}

impl Runtime {
    /// Prepare `topology` to run with `config`, registering the engine's metrics in `registry`.
    pub fn new(topology: Topology, config: StreamsConfig, registry: &prometheus::Registry) -> Result<Self, StreamError> {
        check_kafka_properties(&config.kafka_properties).map_err(StreamError::Config)?;
        if config.standby_replicas > 0 && config.advertised_url.is_none() {
            return Err(StreamError::Config(
                "standby replicas need an advertised URL: where they go is worked out from the owners topic".into(),
            ));
        }
        let metrics = Metrics::new(registry, topology.name()).map_err(|e| StreamError::Config(format!("metrics: {e}")))?;
        let memory = StateMemory::new(config.state_memory);
        registry
            .register(memory.collector(topology.name()).map_err(|e| StreamError::Config(format!("metrics: {e}")))?)
            .map_err(|e| StreamError::Config(format!("metrics: {e}")))?;
        Ok(Runtime {
            config: config.clone(),
            topology: Arc::new(topology),
            metrics,
            status: RuntimeStatus::new(config.threads),
            stores: StoreRegistry::default(),
            shutdown: Shutdown::default(),
            partitions: Arc::default(),
            owned: Arc::default(),
            refusals: Arc::default(),
            standbys: standby::Standbys::default(),
            memory,
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
    /// Who owns which key of store `store`, for forwarding the queries that read it (`None` without an advertised
    /// URL): the tasks of the store's sub-topology.
    pub fn routing(&self, store: &str) -> Result<Option<crate::routing::Routing>, StreamError> {
        let subtopology = self
            .topology
            .store_subtopology(store)
            .ok_or_else(|| StreamError::Config(format!("routing by a store the topology does not have: {store}")))?;
        Ok(self.config.advertised_url.as_ref().map(|url| crate::routing::Routing {
            url: url.clone(),
            store: crate::routing::owners_topic(self.topology.name()),
            stores: self.stores.clone(),
            subtopology,
            partitions: self.partitions.clone(),
            local: self.owned.clone(),
            status: self.status.clone(),
        }))
    }
    /// Each sub-topology's partition count, once the runtime has checked its topics.
    pub fn partitions(&self) -> Arc<OnceLock<Partitions>> {
        self.partitions.clone()
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
        tracing::info!(application_id = self.topology.name(), ?partitions, threads = self.config.threads, "starting");
        // Set once: a runtime runs once.
        let _ = self.partitions.set(partitions);
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
        let _standby_thread = self.spawn_standby_keeper()?;
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

    /// With standby replicas asked for, the thread that keeps them (see `standby`), stopped by the shutdown.
    fn spawn_standby_keeper(&self) -> Result<Option<StandbyThread>, StreamError> {
        let Some(url) = self.config.advertised_url.clone().filter(|_| self.config.standby_replicas > 0) else { return Ok(None) };
        let keeper = standby::StandbyKeeper {
            standbys: self.standbys.clone(),
            // A replica never waits for stable offsets: it reads committed changelog records as they come.
            restorer: self.restorer(false),
            topology: self.topology.clone(),
            stores: self.stores.clone(),
            owners_store: crate::routing::owners_topic(self.topology.name()),
            url,
            replicas: self.config.standby_replicas,
        };
        let shutdown = self.shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{}-standby", self.config.service))
            .spawn(move || keeper.run(&shutdown))
            .map_err(|e| StreamError::Config(format!("cannot start the standby thread: {e}")))?;
        Ok(Some(StandbyThread { handle: Some(handle), shutdown: self.shutdown.clone() }))
    }

    /// What restoring stores needs: for a stream thread's new tasks, and for standby replicas. `wait_for_stable`
    /// (a stream thread under exactly-once) adds a client of the group, which never joins it, to wait until a
    /// previous owner's transaction is resolved before a restore reads the changelogs.
    fn restorer(&self, wait_for_stable: bool) -> restore::Restorer {
        let app = self.topology.name();
        restore::Restorer {
            application_id: app.to_owned(),
            state_dir: self.config.state_dir.clone(),
            consumer: self.restore_config(),
            group: wait_for_stable.then(|| {
                let mut c = self.restore_config();
                c.set("group.id", app).set("isolation.level", "read_committed");
                c
            }),
            metrics: self.metrics.clone(),
            memory: self.memory.clone(),
        }
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

    /// Checks the sources and creates the internal topics; returns each sub-topology's partition count.
    fn prepare_topics(&self, client: &ClientConfig) -> Result<Partitions, StreamError> {
        let probe: BaseConsumer = client.create().map_err(StreamError::kafka("creating a metadata client"))?;
        let sources = self.topology.external_source_topics();
        let existing = topics::wait_for_sources(&probe, &sources, SOURCE_WAIT)?;
        let partitions = Partitions::of(&self.topology, &existing)?;
        let wanted = topics_to_create(&self.topology, &self.config);
        topics::ensure(client, &existing, &wanted, &partitions)?;
        Ok(partitions)
    }
}

/// The standby thread, stopped and joined when the stream threads are done (also when they failed).
struct StandbyThread {
    handle: Option<std::thread::JoinHandle<()>>,
    shutdown: Shutdown,
}

impl Drop for StandbyThread {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
