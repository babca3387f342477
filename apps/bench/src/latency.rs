//! End-to-end latency of the stock ticker beside Kafka Streams': how long a trade takes from being produced to its
//! daily statistics being readable by a `read_committed` consumer, under a steady load (see `engines` for the two
//! programs).
//!
//! Trades are produced at a fixed rate, and the time each was sent is noted. A symbol's statistics carry its count
//! of trades so far, and a symbol's trades keep their order (the input is keyed by symbol, and so is the
//! repartition), so an update that counts `k` trades makes the symbol's first `k` trades readable. With a cache
//! that forwards only a key's latest update, the trades it folded away become readable with the update it
//! forwards, which is what its users see.
//!
//! Each run has topics of its own. It starts with one trade and waits until that trade's statistics are
//! readable (the engine is up and has its partitions), then offers the load; the trades of the first seconds
//! (`--warm-up`) are not counted, so neither is a JVM's compiler warming up.

use crate::engines::{alive, create_outputs, spawn, Engine, Launch, Programs};
use anyhow::{ensure, Context};
use loadgen::produce::{Outgoing, Sender};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use stock_ticker::topology::{DAILY_STATS_TOPIC, TRADES_TOPIC};
use streamcore::runtime::Guarantee;
use streamcore::testkit::kafka::{create_topic, read_to_end, unique};

/// The load every run is offered.
pub(crate) struct Load {
    /// Trades per second.
    pub(crate) rate: u32,
    /// Seconds of load, the warm-up included.
    pub(crate) seconds: u64,
    /// Seconds at the start whose trades are not counted.
    pub(crate) warm_up: u64,
    /// Distinct symbols.
    pub(crate) symbols: u32,
    /// Input partitions.
    pub(crate) partitions: i32,
}

/// The part of a daily-statistics update this benchmark reads.
#[derive(serde::Deserialize)]
struct Stats {
    symbol: String,
    trades: usize,
}

/// What has been sent and what has become readable, shared by the sending and the reading thread.
#[derive(Default)]
struct Progress {
    /// Per symbol, when each of its trades was sent, in order.
    sent: HashMap<String, Vec<Instant>>,
    /// Per symbol, how many of its trades are readable.
    seen: HashMap<String, usize>,
    /// Trades readable, in all.
    readable: usize,
    /// Trades sent from this instant on are measured.
    measured_from: Option<Instant>,
    /// Their latencies.
    latencies: Vec<Duration>,
}

impl Progress {
    /// `stats` was read at `now`: the symbol's trades up to its count are readable.
    fn read(&mut self, stats: &Stats, now: Instant) {
        let Some(sent) = self.sent.get(&stats.symbol) else { return };
        let seen = self.seen.entry(stats.symbol.clone()).or_default();
        let upto = stats.trades.min(sent.len());
        for at in sent.get(*seen..upto).unwrap_or_default() {
            if self.measured_from.is_some_and(|from| *at >= from) {
                self.latencies.push(now - *at);
            }
        }
        if upto > *seen {
            self.readable += upto - *seen;
            *seen = upto;
        }
    }
}

type Shared = Arc<(Mutex<Progress>, Condvar)>;

/// One row's figures.
struct Measured {
    latencies: Vec<Duration>,
}

impl Measured {
    /// The `p`-th quantile (0..1), in ms.
    fn quantile_ms(&self, p: f64) -> f64 {
        let i = ((p * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

pub(crate) fn run(bs: &str, load: &Load, guarantees: &[Guarantee], with_kafka_streams: bool, programs: &Programs) -> anyhow::Result<()> {
    programs.check()?;
    ensure!(load.rate > 0 && load.seconds > load.warm_up, "--rate must be positive and --seconds longer than --warm-up");
    println!(
        "{} trades/s over {} symbols for {} s each run ({} s of warm-up not counted), {} partitions",
        load.rate, load.symbols, load.seconds, load.warm_up, load.partitions
    );
    warm_broker(bs, load)?;
    println!();
    println!("| guarantee | engine | commit interval | p50 | p99 | p99.9 | max | trades measured |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for &guarantee in guarantees {
        let earlier = programs.earlier_ticker.is_some();
        for (engine, commit_ms) in setups(guarantee, earlier, with_kafka_streams) {
            let interval = match (engine, commit_ms, guarantee) {
                (_, Some(ms), _) => format!("{ms} ms"),
                (Engine::Suite | Engine::EarlierSuite, None, _) => "1 s (its default)".to_owned(),
                (Engine::KafkaStreams { .. }, None, Guarantee::AtLeastOnce) => "30 s (its default)".to_owned(),
                (Engine::KafkaStreams { .. }, None, Guarantee::ExactlyOnce) => "100 ms (its default)".to_owned(),
            };
            let mut m = measure(bs, load, guarantee, engine, commit_ms, programs)
                .with_context(|| format!("{guarantee}, {engine}, commit interval {interval}"))?;
            m.latencies.sort_unstable();
            println!(
                "| {guarantee} | {engine} | {interval} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
                m.quantile_ms(0.5),
                m.quantile_ms(0.99),
                m.quantile_ms(0.999),
                m.quantile_ms(1.0),
                m.latencies.len()
            );
        }
    }
    Ok(())
}

/// Write one run's worth of trades to a topic of their own and read them back, so the broker's JVM has compiled
/// its produce and fetch paths before the first run is measured (the first run was seen to fall behind on a cold
/// broker).
fn warm_broker(bs: &str, load: &Load) -> anyhow::Result<()> {
    let topic = unique("latency-warm-up");
    create_topic(bs, &topic, load.partitions, false);
    let opts =
        loadgen::trades::Options { seed: 2, count: u64::from(load.rate) * load.seconds, symbols: load.symbols, ..Default::default() };
    let written = loadgen::produce::produce(bs, &[], &topic, loadgen::trades::generate(&opts), None)?;
    let read = read_to_end(bs, &topic, Duration::from_secs(120))?;
    ensure!(read.len() as u64 == written, "warming the broker: {written} trades written, {} read back", read.len());
    Ok(())
}

/// The rows for one guarantee: each engine at its own default commit interval and at 100 ms, Kafka Streams with
/// its default cache (under exactly-once its default interval is 100 ms already). An earlier build of the ticker
/// runs just before this one at each interval, so a change's before and after sit side by side.
fn setups(guarantee: Guarantee, earlier: bool, with_kafka_streams: bool) -> Vec<(Engine, Option<u64>)> {
    let tickers: &[Engine] = if earlier { &[Engine::EarlierSuite, Engine::Suite] } else { &[Engine::Suite] };
    let mut rows: Vec<_> = [None, Some(100)].into_iter().flat_map(|ms| tickers.iter().map(move |&t| (t, ms))).collect();
    if with_kafka_streams {
        let streams = Engine::KafkaStreams { cache: true };
        rows.push((streams, None));
        if guarantee == Guarantee::AtLeastOnce {
            rows.push((streams, Some(100)));
        }
    }
    rows
}

fn measure(
    bs: &str,
    load: &Load,
    guarantee: Guarantee,
    engine: Engine,
    commit_ms: Option<u64>,
    programs: &Programs,
) -> anyhow::Result<Measured> {
    let prefix = format!("{}.", unique("latency"));
    let output_prefix = "out.";
    let input = format!("{prefix}{TRADES_TOPIC}");
    let stats = format!("{prefix}{output_prefix}{DAILY_STATS_TOPIC}");
    create_topic(bs, &input, load.partitions, false);
    create_outputs(bs, &format!("{prefix}{output_prefix}"), load.partitions);
    let app = unique("latency-ticker");
    let state = std::env::temp_dir().join(&app);
    let log = std::env::temp_dir().join(format!("{app}.log"));
    let launch = Launch { bootstrap: bs, app: &app, prefix: &prefix, output_prefix, guarantee, threads: 1, commit_ms, state_dir: &state };

    let progress: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let consumer = reader(bs, &stats, load.partitions)?;
        let (progress, stop) = (Arc::clone(&progress), Arc::clone(&stop));
        std::thread::spawn(move || read(&consumer, &progress, &stop))
    };
    let mut child = spawn(engine, programs, &launch, &log)?;
    let offered = offer(bs, &input, load, &progress, &mut child);
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&state);
    offered.with_context(|| format!("its log: {}", log.display()))?;
    let _ = std::fs::remove_file(&log);
    let mut progress = progress.0.lock().map_err(|_| anyhow::anyhow!("the reading thread panicked"))?;
    Ok(Measured { latencies: std::mem::take(&mut progress.latencies) })
}

/// A `read_committed` consumer of every partition of `topic` from its start.
fn reader(bs: &str, topic: &str, partitions: i32) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", unique("latency-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Note each update as it is read, until told to stop.
fn read(consumer: &BaseConsumer, progress: &Shared, stop: &AtomicBool) {
    let (lock, readable) = &**progress;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let now = Instant::now();
                let Some(stats) = m.payload().and_then(|p| serde_json::from_slice::<Stats>(p).ok()) else { continue };
                if let Ok(mut p) = lock.lock() {
                    p.read(&stats, now);
                }
                readable.notify_all();
            }
            Some(Err(e)) => eprintln!("reading the daily statistics: {e}"),
            None => {}
        }
    }
}

/// One trade first, until it is readable; then the load, paced; then wait until every trade is readable.
fn offer(bs: &str, input: &str, load: &Load, progress: &Shared, child: &mut Child) -> anyhow::Result<()> {
    let n = u64::from(load.rate) * load.seconds;
    let opts = loadgen::trades::Options {
        seed: 1,
        count: n + 1,
        symbols: load.symbols,
        spacing_ms: 1,
        out_of_order_share: 0.0,
        ..Default::default()
    };
    let mut trades = loadgen::trades::generate(&opts);
    let mut sender = Sender::new(bs, &[("linger.ms".to_owned(), "0".to_owned())])?;
    let mut send = |sender: &mut Sender| -> anyhow::Result<()> {
        let trade = trades.next().context("the generator ran out of trades")?;
        let symbol = trade.key.clone().context("a trade without a key")?;
        let mut p = progress.0.lock().map_err(|_| anyhow::anyhow!("the reading thread panicked"))?;
        p.sent.entry(symbol).or_default().push(Instant::now());
        drop(p);
        sender.send(&Outgoing { topic: input.to_owned(), key: trade.key, value: Some(trade.value), timestamp: None })?;
        Ok(())
    };
    send(&mut sender)?;
    sender.flush()?;
    ensure!(wait_readable(progress, 1, Duration::from_secs(180), child), "the first trade never became readable");

    let started = Instant::now();
    progress.0.lock().map_err(|_| anyhow::anyhow!("the reading thread panicked"))?.measured_from =
        Some(started + Duration::from_secs(load.warm_up));
    for i in 0..n {
        let due = started + Duration::from_secs_f64(i as f64 / f64::from(load.rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        send(&mut sender)?;
    }
    sender.flush()?;
    let total = usize::try_from(n + 1)?;
    ensure!(wait_readable(progress, total, Duration::from_secs(120), child), "not every trade became readable");
    Ok(())
}

/// Wait until `target` trades are readable, while `child` runs, at most `timeout`.
fn wait_readable(progress: &Shared, target: usize, timeout: Duration, child: &mut Child) -> bool {
    let (lock, readable) = &**progress;
    let deadline = Instant::now() + timeout;
    let Ok(mut p) = lock.lock() else { return false };
    loop {
        if p.readable >= target {
            return true;
        }
        if Instant::now() >= deadline || !alive(child) {
            return false;
        }
        p = match readable.wait_timeout(p, Duration::from_secs(1)) {
            Ok((p, _)) => p,
            Err(_) => return false,
        };
    }
}
