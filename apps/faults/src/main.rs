//! `faults`: runs the fault-injection suite against a real broker and prints its table. `scripts/faults` starts a
//! broker of its own (the broker scenarios restart it) and builds the binaries first.

use clap::Parser;
use faults::cluster::Broker;
use faults::report::{failure, table};
use faults::scenario::{run, Options, Scenario};
use std::path::PathBuf;
use streamcore::runtime::Guarantee;

#[derive(Parser)]
#[command(name = "faults", about = "Fault injection against two stock-ticker instances, verified against an oracle")]
struct Cli {
    /// Kafka bootstrap servers (a real broker).
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "localhost:9092")]
    bootstrap: String,
    /// The broker's `scripts/kafka` run directory, for the broker scenarios.
    #[arg(long, env = "KAFKA_RUN_DIR")]
    kafka_run_dir: Option<PathBuf>,
    /// Scenarios, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Scenario::Sigkill, Scenario::Sigstop, Scenario::BrokerTerm, Scenario::BrokerKill, Scenario::LostState, Scenario::Poison])]
    scenarios: Vec<Scenario>,
    /// Guarantees, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce])]
    guarantees: Vec<Guarantee>,
    /// Records per run.
    #[arg(long, default_value_t = 60_000)]
    records: usize,
    /// Records per second.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Distinct symbols.
    #[arg(long, default_value_t = 40)]
    symbols: usize,
    /// SIGKILLs in the SIGKILL scenario.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// Standby replicas each instance keeps (with its URL advertised).
    #[arg(long, default_value_t = 0)]
    standby_replicas: usize,
    /// Records preloaded into the daily-statistics store's changelog: a large store for each takeover to restore.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// The stock-ticker binary (default: next to this one).
    #[arg(long)]
    ticker: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let broker = cli.kafka_run_dir.map(|dir| Broker::new(PathBuf::from("scripts/kafka"), dir));
    let opts = Options {
        bootstrap: cli.bootstrap,
        ticker: cli.ticker.unwrap_or_else(faults::ticker_binary),
        broker,
        records: cli.records,
        rate: cli.rate,
        symbols: cli.symbols,
        kills: cli.kills,
        standby_replicas: cli.standby_replicas,
        preload: cli.preload,
    };
    let mut rows = Vec::new();
    for &scenario in &cli.scenarios {
        for &guarantee in &cli.guarantees {
            eprintln!("faults: {scenario} under {guarantee} ({} records at {}/s)", opts.records, opts.rate);
            let row = run(scenario, guarantee, &opts)?;
            eprintln!("{}", table(std::slice::from_ref(&row)));
            rows.push(row);
        }
    }
    println!("{}", table(&rows));
    let failures: Vec<String> = rows.iter().filter_map(failure).collect();
    for f in &failures {
        println!("FAIL {f}");
    }
    anyhow::ensure!(failures.is_empty(), "{} of {} runs failed their verdict", failures.len(), rows.len());
    Ok(())
}
