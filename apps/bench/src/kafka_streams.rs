//! The stock ticker's throughput beside Kafka Streams': both programs (see `engines`) on the same broker and the
//! same pre-loaded trades, one process after another.
//!
//! Kafka Streams runs twice per setup: with its state cache off (`statestore.cache.max.bytes=0`), so it emits
//! every update as the contract says and the suite does, and with its default cache (10 MiB), under which the
//! DSL's moving windows forward a key's latest update only at commit or eviction, so it sends far fewer
//! moving-window records (its processors, the days and the ranking, forward at once either way). Both commit every
//! second, the suite's default, under both guarantees (Kafka Streams' own default is 30 s, and 100 ms under
//! exactly-once).
//!
//! A run is over when the application's consumer group has committed the end of the trades, of the repartition
//! topic and of the daily changes (which are only committed once every output they caused is written). Figures:
//! trades/s from the process's start until then, CPU seconds of the process (user and system, from
//! `/proc/<pid>/stat`), trades per CPU second, and the peak resident set (`VmHWM`).

use crate::engines::{alive, create_outputs, spawn, Engine, Launch, Programs};
use crate::memory::peak_mib_of;
use anyhow::{ensure, Context};
use std::process::Command;
use std::time::{Duration, Instant};
use stock_ticker::topology::{BY_SYMBOL, DAILY_CHANGES_TOPIC, TRADES_TOPIC};
use streamcore::runtime::Guarantee;
use streamcore::testkit::kafka::{unique, wait_caught_up};
use streamcore::topology::repartition_topic;

/// The trades every run reads: their topic prefix, how many, over how many partitions.
struct Preloaded {
    prefix: String,
    trades: u64,
    partitions: i32,
}

/// One process's figures.
struct Measured {
    trades_per_s: f64,
    cpu_s: f64,
    peak_mib: f64,
}

impl Measured {
    /// These figures as multiples of `other`'s: trades/s, trades per CPU second, peak memory.
    fn against(&self, other: &Measured) -> String {
        format!(
            "trades/s {:.2}x, trades per CPU second {:.2}x, peak memory {:.2}x",
            self.trades_per_s / other.trades_per_s,
            other.cpu_s / self.cpu_s,
            self.peak_mib / other.peak_mib
        )
    }
}

pub(crate) fn run(
    bs: &str,
    n: u64,
    partitions: i32,
    symbols: u32,
    setups: &[(Guarantee, usize)],
    reference: bool,
    programs: &Programs,
) -> anyhow::Result<()> {
    programs.check()?;
    let input = Preloaded { prefix: format!("{}.", unique("versus")), trades: n, partitions };
    let topic = format!("{}{TRADES_TOPIC}", input.prefix);
    crate::stock_ticker::preload(bs, &topic, n, partitions, symbols)?;

    println!();
    println!("| setup | engine | trades/s | CPU seconds | trades per CPU second | peak memory |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for &(guarantee, threads) in setups {
        let setup = format!("{guarantee}, {threads} thread{}", if threads == 1 { "" } else { "s" });
        let mut figures = Vec::new();
        let earlier = programs.earlier_ticker.as_ref().map(|_| Engine::EarlierSuite);
        let kafka_streams = [Engine::KafkaStreams { cache: false }, Engine::KafkaStreams { cache: true }].into_iter().filter(|_| reference);
        let engines = earlier.into_iter().chain([Engine::Suite]).chain(kafka_streams);
        for engine in engines {
            let m = measure(bs, &input, engine, guarantee, threads, programs).with_context(|| format!("{setup}, {engine}"))?;
            println!("| {setup} | {engine} | {:.0} | {:.1} | {:.0} | {:.0} MiB |", m.trades_per_s, m.cpu_s, n as f64 / m.cpu_s, m.peak_mib);
            figures.push((engine, m));
        }
        let of = |wanted: Engine| figures.iter().find(|(e, _)| *e == wanted).map(|(_, m)| m);
        if let (Some(suite), Some(reference)) = (of(Engine::Suite), of(Engine::KafkaStreams { cache: false })) {
            ratios.push(format!("{setup}: the suite's {} Kafka Streams' (cache off)", suite.against(reference)));
        }
        if let (Some(suite), Some(earlier)) = (of(Engine::Suite), of(Engine::EarlierSuite)) {
            ratios.push(format!("{setup}: this build's {} the earlier build's", suite.against(earlier)));
        }
    }
    println!();
    for r in ratios {
        println!("{r}");
    }
    Ok(())
}

/// One engine's run over the pre-loaded trades, into output topics of its own.
fn measure(
    bs: &str,
    input: &Preloaded,
    engine: Engine,
    guarantee: Guarantee,
    threads: usize,
    programs: &Programs,
) -> anyhow::Result<Measured> {
    let app = unique("versus-ticker");
    let output_prefix = format!("{}.", unique("out"));
    let prefix = input.prefix.as_str();
    let changes = format!("{prefix}{output_prefix}{DAILY_CHANGES_TOPIC}");
    create_outputs(bs, &format!("{prefix}{output_prefix}"), input.partitions);
    let state = std::env::temp_dir().join(&app);
    let log = std::env::temp_dir().join(format!("{app}.log"));
    let launch = Launch {
        bootstrap: bs,
        app: &app,
        prefix,
        output_prefix: &output_prefix,
        guarantee,
        threads,
        commit_ms: Some(1000),
        state_dir: &state,
    };
    let started = Instant::now();
    let mut child = spawn(engine, programs, &launch, &log)?;
    let done = [format!("{prefix}{TRADES_TOPIC}"), repartition_topic(&app, BY_SYMBOL), changes]
        .iter()
        .all(|topic| alive(&mut child) && wait_caught_up(bs, &app, topic, Duration::from_secs(900)));
    let secs = started.elapsed().as_secs_f64();
    let (cpu_s, peak_mib) = (cpu_seconds(child.id())?, peak_mib_of(&child.id().to_string()).context("no VmHWM in /proc/<pid>/status")?);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&state);
    ensure!(done, "{engine} did not catch up (its log: {})", log.display());
    let _ = std::fs::remove_file(&log);
    Ok(Measured { trades_per_s: input.trades as f64 / secs, cpu_s, peak_mib })
}

/// User and system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces: state is the first, utime
    // and stime the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).context("unreadable /proc/<pid>/stat");
    Ok((ticks(11)? + ticks(12)?) / clock_ticks()?)
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s times.
fn clock_ticks() -> anyhow::Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output().context("getconf CLK_TCK")?;
    String::from_utf8_lossy(&out.stdout).trim().parse().context("getconf CLK_TCK")
}
