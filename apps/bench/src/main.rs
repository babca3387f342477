//! Throughput benchmark against a real broker (`scripts/bench` starts one): one pre-loaded input topic, read by
//! three consumers in turn, each with its own consumer group and output topic:
//!
//! 1. **plain**: a hand-written rdkafka loop (poll, parse JSON, map, serialize, produce; offsets auto-committed),
//!    what a careful user writes without a framework: the baseline.
//! 2. **pass-through**: the same map as a streamcore topology (source, map_values, sink) with the runtime's
//!    at-least-once commits.
//! 3. **keyed state**: a streamcore processor keeping a per-account running total in RocksDB, every write logged
//!    to its changelog, then producing.
//!
//! `bench fraud-detection` does the same with card transactions and their profiles, and `bench iot-controller`
//! with telemetry and the device registry.
//!
//! `bench kafka-streams` runs the `stock-ticker` binary beside the same contract written as a Kafka Streams
//! application, each a process of its own (see `kafka_streams`); `bench latency` measures both programs'
//! end-to-end latency under a steady load (see `latency`).
//!
//! `bench restore` measures restoring instead: a pre-loaded changelog read into an empty state directory, beside a
//! plain read of the same records (see `restore`).
//!
//! `bench stock-ticker` pre-loads trades over many symbols instead and runs the plain loop beside the whole stock
//! ticker (one runtime per instance, in this process), reporting trades per second and peak memory (the process's
//! peak resident set, reset before each run).
//!
//! Each figure is records per second from the first record consumed until every input offset is committed (for
//! the plain loop: until the last record is produced, flushed and committed). Timing is wall clock; run on an
//! otherwise idle machine and compare figures within one run only.

use anyhow::Context;
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use streamcore::codec::{Deserializer, Json, Serializer};
use streamcore::state::StoreSpec;
use streamcore::testkit::kafka::{create_topic, produce, unique};
use streamcore::time::EventTime;
use streamcore::{ProcessError, Processor, ProcessorContext, Record, Runtime, StreamsConfig, TopologyBuilder};

/// How often a benchmark reads the runtime's counters to see whether a run is done. Each read gathers every metric
/// of the registry, the stores' memory among them; every 2 ms, as it once was, that took CPU from the run measured.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

mod engines;
mod fraud_detection;
mod iot_controller;
mod kafka_streams;
mod latency;
mod memory;
mod restore;
mod stock_ticker;
mod timed;

// The services' allocator (see their main.rs), so the engine runs here as it runs in them, and the plain loop
// it is compared with gets the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bench", about = "streamcore throughput beside a plain rdkafka loop")]
struct Cli {
    /// Kafka bootstrap servers (a real broker).
    #[arg(long, env = "KAFKA_BOOTSTRAP", global = true, default_value = "localhost:9092")]
    bootstrap: String,
    /// Records to pre-load and process.
    #[arg(long, default_value_t = 1_000_000, global = true)]
    records: u64,
    /// Input partitions.
    #[arg(long, default_value_t = 4, global = true)]
    partitions: i32,
    #[command(subcommand)]
    command: Option<Bench>,
}

#[derive(clap::Subcommand)]
enum Bench {
    /// The engine's paths (plain loop, pass-through, keyed state) on transactions: the default.
    Core,
    /// The whole stock ticker (one application, three sub-topologies) on trades.
    StockTicker {
        /// Distinct symbols.
        #[arg(long, default_value_t = 500)]
        symbols: u32,
        /// Stream threads per instance to measure, comma-separated (each beside its own plain-loop baseline).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        threads: Vec<usize>,
        /// Instances (each with its own state directory, so its own members of the group) sharing the work.
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// Guarantees to measure, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "at-least-once")]
        guarantees: Vec<streamcore::runtime::Guarantee>,
    },
    /// The `stock-ticker` binary beside the same contract as a Kafka Streams application, each a process of its
    /// own: trades/s, CPU seconds, trades per CPU second, peak memory (`scripts/bench kafka-streams` builds both).
    KafkaStreams {
        /// Distinct symbols.
        #[arg(long, default_value_t = 500)]
        symbols: u32,
        /// Stream threads to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Guarantees to measure, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "at-least-once,exactly-once")]
        guarantees: Vec<streamcore::runtime::Guarantee>,
        /// Leave Kafka Streams out: this build beside `--earlier-ticker` only, a quick before and after.
        #[arg(long)]
        without_kafka_streams: bool,
        #[command(flatten)]
        programs: engines::Programs,
    },
    /// Latency from a trade's produce time to its daily statistics being readable (`read_committed`), the
    /// `stock-ticker` binary beside the Kafka Streams application, at a steady rate.
    Latency {
        /// Trades per second offered.
        #[arg(long, default_value_t = 4000)]
        rate: u32,
        /// Seconds of load per run, the warm-up included.
        #[arg(long, default_value_t = 40)]
        seconds: u64,
        /// Seconds at the start of each run whose trades are not counted.
        #[arg(long, default_value_t = 10)]
        warm_up: u64,
        /// Distinct symbols.
        #[arg(long, default_value_t = 500)]
        symbols: u32,
        /// Guarantees to measure, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "at-least-once,exactly-once")]
        guarantees: Vec<streamcore::runtime::Guarantee>,
        /// Leave Kafka Streams out: this build beside `--earlier-ticker` only, a quick before and after.
        #[arg(long)]
        without_kafka_streams: bool,
        #[command(flatten)]
        programs: engines::Programs,
    },
    /// The fraud detector on card transactions, with every profile loaded.
    FraudDetection {
        /// Cards (profiles).
        #[arg(long, default_value_t = 100_000)]
        cards: u32,
        /// The detector's state-memory budget (`off`: unbounded). One per run: a process's resident set does not
        /// shrink back after a run, so a second run's peak would include the first's.
        #[arg(long, default_value_t = streamcore::state::budget::MemoryBudget::DEFAULT)]
        state_memory: streamcore::state::budget::MemoryBudget,
    },
    /// The IoT controller on telemetry, with every device registered.
    IotController {
        /// Devices (half thermostats, half washers).
        #[arg(long, default_value_t = 10_000)]
        devices: u32,
    },
    /// Restoring the keyed-state store from a pre-loaded changelog on an empty state directory.
    Restore {
        /// Stream threads of the restoring runtime.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

#[derive(Debug, Clone, Deserialize)]
struct Txn {
    txn_id: String,
    account_id: String,
    #[serde(deserialize_with = "streamcore::codec::decimal::exact")]
    amount: Decimal,
    currency: String,
    ts: chrono::DateTime<chrono::FixedOffset>,
}

#[derive(Debug, Clone, Serialize)]
struct Out {
    txn_id: String,
    account_id: String,
    amount: Decimal,
    currency: String,
    big: bool,
}

/// The map both the plain loop and the topology apply.
fn map(t: Txn) -> Out {
    Out { big: t.amount >= Decimal::from(10_000), txn_id: t.txn_id, account_id: t.account_id, amount: t.amount, currency: t.currency }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct Total {
    count: u64,
    sum: Decimal,
}

struct RunningTotal;

impl Processor for RunningTotal {
    type In = Txn;
    type Out = Total;
    fn process(&mut self, r: Record<Txn>, ctx: &mut ProcessorContext<'_, '_, Total>) -> Result<(), ProcessError> {
        let store = ctx.store("totals")?;
        let mut t: Total = store.get_json(&r.value.account_id)?.unwrap_or_default();
        t.count += 1;
        t.sum += r.value.amount;
        store.put_json(&r.value.account_id, &t)?;
        ctx.forward(r.with_value(t));
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        None | Some(Bench::Core) => core_paths(&cli),
        Some(Bench::StockTicker { symbols, threads, instances, guarantees }) => {
            let setups: Vec<stock_ticker::Setup> = guarantees
                .iter()
                .flat_map(|&guarantee| threads.iter().map(move |&threads| stock_ticker::Setup { threads, instances, guarantee }))
                .collect();
            stock_ticker::run(&cli.bootstrap, cli.records, cli.partitions, symbols, &setups)
        }
        Some(Bench::KafkaStreams { symbols, threads, guarantees, without_kafka_streams, programs }) => {
            let setups: Vec<_> = guarantees.iter().flat_map(|&guarantee| threads.iter().map(move |&t| (guarantee, t))).collect();
            kafka_streams::run(&cli.bootstrap, cli.records, cli.partitions, symbols, &setups, !without_kafka_streams, &programs)
        }
        Some(Bench::Latency { rate, seconds, warm_up, symbols, guarantees, without_kafka_streams, programs }) => {
            let load = latency::Load { rate, seconds, warm_up, symbols, partitions: cli.partitions };
            latency::run(&cli.bootstrap, &load, &guarantees, !without_kafka_streams, &programs)
        }
        Some(Bench::FraudDetection { cards, state_memory }) => {
            fraud_detection::run(&cli.bootstrap, cli.records, cli.partitions, cards, state_memory)
        }
        Some(Bench::IotController { devices }) => iot_controller::run(&cli.bootstrap, cli.records, cli.partitions, devices),
        Some(Bench::Restore { threads }) => restore::run(&cli.bootstrap, cli.records, cli.partitions, threads),
    }
}

fn core_paths(cli: &Cli) -> anyhow::Result<()> {
    let bs = cli.bootstrap.clone();
    let input = unique("bench-in");
    create_topic(&bs, &input, cli.partitions, false);
    let started = Instant::now();
    let opts = loadgen::transactions::Options { seed: 1, count: cli.records, accounts: 100_000, ..Default::default() };
    let records: Vec<_> = loadgen::transactions::generate(&opts).map(|g| (g.key, g.value)).collect();
    let bytes: usize = records.iter().map(|(_, v)| v.len()).sum();
    produce(&bs, &input, &records);
    drop(records);
    println!(
        "pre-loaded {} records ({} MB) into {input} ({} partitions) in {:.1}s",
        cli.records,
        bytes / 1_000_000,
        cli.partitions,
        started.elapsed().as_secs_f64()
    );

    let plain = plain_loop(&bs, &input, cli.records, map)?;
    let pass = framework(&bs, &input, cli.records, false)?;
    let keyed = framework(&bs, &input, cli.records, true)?;
    let plain_again = plain_loop(&bs, &input, cli.records, map)?;
    let baseline = (plain + plain_again) / 2.0;
    println!();
    println!("| path | records/s | ratio to plain loop |");
    println!("|---|---:|---:|");
    println!("| plain rdkafka loop (baseline, mean of a run before and after) | {baseline:.0} | 1.00 |");
    println!("| streamcore pass-through (consume, map, produce) | {pass:.0} | {:.2} |", pass / baseline);
    println!("| streamcore keyed state (consume, RocksDB + changelog, produce) | {keyed:.0} | {:.2} |", keyed / baseline);
    println!("(baseline runs: {plain:.0} and {plain_again:.0} records/s)");
    Ok(())
}

/// The baseline: poll, decode `I`, map, encode `O`, produce; offsets auto-committed, a final flush and commit.
fn plain_loop<I, O>(bs: &str, input: &str, n: u64, map: fn(I) -> O) -> anyhow::Result<f64>
where
    I: serde::de::DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    let output = unique("bench-plain-out");
    create_topic(bs, &output, 4, false);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", unique("bench-plain"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    consumer.subscribe(&[input])?;
    let (codec_in, codec_out) = (Json::<I>::new(), Json::<O>::new());
    let mut seen = 0u64;
    let mut first: Option<Instant> = None;
    while seen < n {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else { continue };
        let msg = msg?;
        first.get_or_insert_with(Instant::now);
        seen += 1;
        let Some(payload) = msg.payload() else { continue };
        let Ok(value) = codec_in.deserialize(payload) else { continue };
        let out = codec_out.serialize(&map(value)).map_err(anyhow::Error::msg)?;
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&output).payload(&out);
        if let Some(k) = msg.key() {
            rec = rec.key(k);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    match consumer.commit_consumer_state(CommitMode::Sync) {
        // The background auto-commit got there first: nothing left to commit.
        Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) | Ok(()) => {}
        Err(e) => return Err(e.into()),
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!("plain loop: {n} records in {secs:.2}s");
    Ok(n as f64 / secs)
}

fn framework(bs: &str, input: &str, n: u64, keyed: bool) -> anyhow::Result<f64> {
    let output = unique("bench-core-out");
    let app = unique(if keyed { "bench-keyed" } else { "bench-pass" });
    let b = TopologyBuilder::new(app.as_str());
    let source = b.source(input, Json::<Txn>::new(), |t: &Txn| EventTime::payload(&t.ts));
    if keyed {
        source.process("total", &[StoreSpec::persistent("totals")], || RunningTotal).to(
            "sink",
            &output,
            Json::new(),
            |r: &Record<Total>| r.key.clone(),
        );
    } else {
        source.map_values("map", map).to("sink", &output, Json::new(), |r: &Record<Out>| r.key.clone());
    }
    drop(source);
    let mut cfg = StreamsConfig::new("bench", bs);
    let state = std::env::temp_dir().join(&app);
    cfg.state_dir = state.clone();
    let registry = prometheus::Registry::new();
    let runtime = Runtime::new(b.build()?, cfg, &registry)?;
    let shutdown = runtime.shutdown_handle();
    let thread = runtime.spawn()?;
    let consumed = || -> f64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "streamcore_records_consumed_total")
            .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()))
            .sum()
    };
    // From the first record consumed until all n are consumed and the runtime stopped gracefully (final flush
    // and commit included), the same end point as the plain loop's.
    let mut first = None;
    while consumed() < n as f64 && !thread.is_finished() {
        if first.is_none() && consumed() > 0.0 {
            first = Some(Instant::now());
        }
        std::thread::sleep(crate::WATCH_INTERVAL);
    }
    shutdown.trigger();
    thread.join().map_err(|_| anyhow::anyhow!("stream thread panicked"))?.context("runtime")?;
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    anyhow::ensure!(
        streamcore::testkit::kafka::wait_caught_up(bs, &app, input, Duration::from_secs(60)),
        "offsets not committed to the end"
    );
    let _ = std::fs::remove_dir_all(state);
    println!("streamcore {}: {n} records in {secs:.2}s", if keyed { "keyed state" } else { "pass-through" });
    Ok(n as f64 / secs)
}
