//! The stock ticker's whole topology (validate, repartition by symbol, daily and moving windows, the daily-changes
//! topic, the top-10) on pre-loaded trades, beside the plain loop (decode, validate, encode, produce).

use crate::memory::beside_plain_loop;
use crate::plain_loop;
use anyhow::Context;
use std::time::Instant;
use stock_ticker::model::Trade;
use stock_ticker::topology::{topology, Settings, BY_SYMBOL, DAILY_CHANGES_TOPIC, TRADES_TOPIC};
use streamcore::runtime::Guarantee;
use streamcore::testkit::kafka::{create_topic, unique};
use streamcore::{Runtime, StreamsConfig};

/// A counter's value for one topic, over every runtime registered in `registry`.
pub(crate) fn counter(registry: &prometheus::Registry, name: &str, topic: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.name() == "topic" && l.value() == topic))
        .map(|m| m.get_counter().get_value())
        .sum()
}

fn validated(t: Trade) -> Trade {
    Trade { symbol: t.symbol.to_ascii_uppercase(), ..t }
}

/// One configuration to measure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    /// Stream threads per instance.
    pub(crate) threads: usize,
    /// Instances in the group.
    pub(crate) instances: usize,
    /// At-least-once or exactly-once.
    pub(crate) guarantee: Guarantee,
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        write!(
            f,
            "stock-ticker, {} instance{}, {} stream thread{} each, {}",
            self.instances,
            plural(self.instances),
            self.threads,
            plural(self.threads),
            self.guarantee
        )
    }
}

/// Create `topic` and write `n` seeded trades over `symbols` symbols into it, streamed from the generator and never
/// held in memory, so the peaks measured after are the runs' own.
pub(crate) fn preload(bs: &str, topic: &str, n: u64, partitions: i32, symbols: u32) -> anyhow::Result<()> {
    create_topic(bs, topic, partitions, false);
    let opts = loadgen::trades::Options { seed: 1, count: n, symbols, spacing_ms: 10, ..Default::default() };
    let started = Instant::now();
    loadgen::produce::produce(bs, &[], topic, loadgen::trades::generate(&opts), None)?;
    println!(
        "pre-loaded {n} trades over {symbols} symbols into {topic} ({partitions} partitions) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) fn run(bs: &str, n: u64, partitions: i32, symbols: u32, setups: &[Setup]) -> anyhow::Result<()> {
    for &setup in setups {
        // A fresh prefix per run: the ranking reads `stock-daily-changes` from the start, so a topic shared with an
        // earlier run would hand it that run's changes too.
        let prefix = format!("{}.", unique("bench"));
        let input = format!("{prefix}{TRADES_TOPIC}");
        preload(bs, &input, n, partitions, symbols)?;
        beside_plain_loop("trades", &setup.to_string(), || plain_loop(bs, &input, n, validated), || ticker(bs, &prefix, n, setup))?;
    }
    Ok(())
}

/// Runs the ticker on every instance until it has consumed every trade (input and repartition topic) and every
/// daily change it wrote; stops them gracefully (final commits included). Returns trades/s.
fn ticker(bs: &str, prefix: &str, n: u64, setup: Setup) -> anyhow::Result<f64> {
    let app = unique("bench-ticker");
    let mut settings = Settings::new(&app);
    settings.topics = streamcore::TopicNames::prefixed(prefix);
    settings.close_when_idle = None;
    let state = std::env::temp_dir().join(&app);
    let (mut registries, mut stops, mut threads) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..setup.instances {
        let mut cfg = StreamsConfig::new("bench-ticker", bs);
        // Its own state directory, so its own instance id and members in the group.
        cfg.state_dir = state.join(format!("instance-{i}"));
        cfg.threads = setup.threads;
        cfg.guarantee = setup.guarantee;
        let registry = prometheus::Registry::new();
        let runtime = Runtime::new(topology(&settings)?, cfg, &registry)?;
        stops.push(runtime.shutdown_handle());
        threads.push(runtime.spawn()?);
        registries.push(registry);
    }

    let input = format!("{prefix}{TRADES_TOPIC}");
    let repartition = streamcore::topology::repartition_topic(&app, BY_SYMBOL);
    let changes = format!("{prefix}{DAILY_CHANGES_TOPIC}");
    let total = |name: &str, topic: &str| registries.iter().map(|r| counter(r, name, topic)).sum::<f64>();
    let consumed = |topic: &str| total("streamcore_records_consumed_total", topic);
    let mut first = None;
    loop {
        if first.is_none() && consumed(&input) > 0.0 {
            first = Some(Instant::now());
        }
        let statistics_done = consumed(&input) >= n as f64 && consumed(&repartition) >= n as f64;
        if statistics_done && consumed(&changes) >= total("streamcore_records_produced_total", &changes) {
            break;
        }
        anyhow::ensure!(threads.iter().all(|t| !t.is_finished()), "a stream thread stopped early");
        std::thread::sleep(crate::WATCH_INTERVAL);
    }
    for stop in &stops {
        stop.trigger();
    }
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("stream thread panicked"))?.context("runtime")?;
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    let ranked = consumed(&changes);
    let _ = std::fs::remove_dir_all(state);
    println!("stock-ticker: {n} trades in {secs:.2}s; task 2_0 ranked {ranked:.0} daily changes");
    Ok(n as f64 / secs)
}
