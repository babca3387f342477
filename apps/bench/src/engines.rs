//! The two programs the side-by-side benchmarks run, each as a process of its own: the suite's `stock-ticker`
//! binary and the same contract written as a Kafka Streams 4.4 application (`apps/bench/kafka-streams`, built by
//! `scripts/bench kafka-streams` with Maven). Measuring whole processes keeps the comparison fair: the JVM's start,
//! its compiler and its heap count for the one, the binary's start and its allocator for the other.

use anyhow::{ensure, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use stock_ticker::topology::{DAILY_CHANGES_TOPIC, DAILY_STATS_TOPIC, MOVING_STATS_TOPIC, TOP10_TOPIC};
use streamcore::runtime::Guarantee;
use streamcore::testkit::kafka::create_topic;

/// What runs the ticker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// The suite's `stock-ticker`.
    Suite,
    /// An earlier build of `stock-ticker` (`--earlier-ticker`), for a change's before and after in one run.
    EarlierSuite,
    /// The Kafka Streams reference, its state cache on (10 MiB, its default) or off.
    KafkaStreams { cache: bool },
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Suite => f.write_str("stock-ticker (streamcore)"),
            Engine::EarlierSuite => f.write_str("stock-ticker, earlier build"),
            Engine::KafkaStreams { cache: false } => f.write_str("Kafka Streams 4.4, cache off"),
            Engine::KafkaStreams { cache: true } => f.write_str("Kafka Streams 4.4, default cache"),
        }
    }
}

/// Where the two programs are: `scripts/bench kafka-streams` (and `latency`) builds both and says.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Programs {
    /// The release `stock-ticker` binary.
    #[arg(long, env = "STOCK_TICKER_BIN")]
    pub(crate) ticker: PathBuf,
    /// The Kafka Streams reference's jar with its dependencies.
    #[arg(long, env = "KAFKA_STREAMS_JAR")]
    pub(crate) jar: PathBuf,
    /// An earlier release build of `stock-ticker`, run first in every setup, so that a change's before and after
    /// are measured in one run, on one input.
    #[arg(long, env = "STOCK_TICKER_EARLIER_BIN")]
    pub(crate) earlier_ticker: Option<PathBuf>,
}

impl Programs {
    /// Both programs are there.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        ensure!(self.ticker.is_file(), "no stock-ticker binary at {} (scripts/bench kafka-streams builds it)", self.ticker.display());
        ensure!(self.jar.is_file(), "no Kafka Streams jar at {} (scripts/bench kafka-streams builds it)", self.jar.display());
        if let Some(earlier) = &self.earlier_ticker {
            ensure!(earlier.is_file(), "no earlier stock-ticker binary at {}", earlier.display());
        }
        Ok(())
    }
}

/// One run of an engine: its consumer group, its topics and how it processes.
pub(crate) struct Launch<'a> {
    pub(crate) bootstrap: &'a str,
    /// The application id, which is also its consumer group.
    pub(crate) app: &'a str,
    /// Prefix of every topic, input and output (`--topic-prefix`).
    pub(crate) prefix: &'a str,
    /// Prefix of the outputs after that one (`--output-prefix`), so each run writes topics of its own.
    pub(crate) output_prefix: &'a str,
    pub(crate) guarantee: Guarantee,
    pub(crate) threads: usize,
    /// The commit interval, ms; `None`: the engine's own default (the suite's 1 s; Kafka Streams' 30 s, or 100 ms
    /// under exactly-once).
    pub(crate) commit_ms: Option<u64>,
    pub(crate) state_dir: &'a Path,
}

/// Create a run's four output topics, named after `outputs` (its topic prefix and output prefix): Kafka Streams
/// creates only its internal topics, and the benchmark's broker creates none on demand. They get the shape the
/// suite gives them: the statistics as many partitions as the input, the daily changes and the top-10 one.
pub(crate) fn create_outputs(bootstrap: &str, outputs: &str, partitions: i32) {
    for (topic, count) in [(DAILY_STATS_TOPIC, partitions), (MOVING_STATS_TOPIC, partitions), (DAILY_CHANGES_TOPIC, 1), (TOP10_TOPIC, 1)] {
        create_topic(bootstrap, &format!("{outputs}{topic}"), count, false);
    }
}

/// Start `engine` for `launch`, its standard error into `log`.
pub(crate) fn spawn(engine: Engine, programs: &Programs, launch: &Launch<'_>, log: &Path) -> anyhow::Result<Child> {
    let state = launch.state_dir.display().to_string();
    let mut command = match engine {
        Engine::Suite | Engine::EarlierSuite => {
            let binary = match engine {
                Engine::EarlierSuite => programs.earlier_ticker.as_ref().context("no --earlier-ticker")?,
                _ => &programs.ticker,
            };
            let mut c = Command::new(binary);
            c.args(["--bootstrap", launch.bootstrap, "--application-id", launch.app, "--topic-prefix", launch.prefix]);
            c.args(["--output-prefix", launch.output_prefix, "--state-dir", &state]);
            c.args(["--threads", &launch.threads.to_string(), "--guarantee", &launch.guarantee.to_string()]);
            if let Some(ms) = launch.commit_ms {
                c.args(["--commit-interval-ms", &ms.to_string()]);
            }
            // Kafka Streams has no idle closing, so neither closes a window before its grace has passed.
            c.args(["--close-when-idle", "off", "--http", "127.0.0.1:0"]);
            c
        }
        Engine::KafkaStreams { cache } => {
            let mut c = Command::new("java");
            c.arg("-jar").arg(&programs.jar);
            let outputs = format!("{}{}", launch.prefix, launch.output_prefix);
            c.args([launch.bootstrap, launch.app, launch.prefix, &outputs, &launch.guarantee.to_string()]);
            c.args([launch.threads.to_string().as_str(), if cache { "on" } else { "off" }]);
            c.args([&launch.commit_ms.map_or_else(|| "default".to_owned(), |ms| ms.to_string()), &state]);
            c
        }
    };
    command.stdout(Stdio::null()).stderr(std::fs::File::create(log)?).spawn().with_context(|| format!("start {engine}"))
}

/// Whether `child` is still running.
pub(crate) fn alive(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}
