//! `loadgen`: writes seeded synthetic load to the suite's input topics.

use clap::{Parser, Subcommand};
use loadgen::{cards, devices, trades, transactions};
use std::io::Write;

#[derive(Parser)]
#[command(name = "loadgen", version, about = "Seeded, reproducible load for the suite's input topics")]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "localhost:9092", global = true)]
    bootstrap: String,
    /// Extra librdkafka properties, comma-separated `key=value`.
    #[arg(long, env = "KAFKA_PROPERTIES", default_value = "", global = true)]
    kafka_properties: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Account transactions for txn-mailer.
    Transactions {
        /// Topic to write.
        #[arg(long, default_value = "transactions")]
        topic: String,
        /// Number of records.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Records per second (0: as fast as possible).
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Distinct accounts.
        #[arg(long, default_value_t = 1000)]
        accounts: u32,
        /// Share of high-value transactions (0..1).
        #[arg(long, default_value_t = 0.02)]
        high_value: f64,
        /// Share of malformed records (0..1).
        #[arg(long, default_value_t = 0.0)]
        malformed: f64,
    },
    /// Labelled card traffic for fraud-detection: profiles, then transactions with frauds of each rule injected.
    /// The ground truth goes to `--truth` (JSON lines), never into the records.
    Cards {
        /// Transactions topic.
        #[arg(long, default_value = "card-transactions")]
        topic: String,
        /// Profiles topic (compacted).
        #[arg(long, default_value = "card-profiles")]
        profiles_topic: String,
        /// Merchant blocklist topic (compacted).
        #[arg(long, default_value = "merchant-blocklist")]
        blocklist_topic: String,
        /// Transactions (malformed ones come on top).
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Cards.
        #[arg(long, default_value_t = 2000)]
        cards: u32,
        /// Records per second (0: as fast as possible).
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Share of steps that inject a fraud pattern (0..1).
        #[arg(long, default_value_t = 0.01)]
        fraud_rate: f64,
        /// Share of extra malformed records (0..1).
        #[arg(long, default_value_t = 0.0)]
        malformed: f64,
        /// Where to write the ground truth: one `{"txn_id", "expected": [rules]}` per line.
        #[arg(long)]
        truth: Option<std::path::PathBuf>,
    },
    /// Simulated homes for iot-controller: registers a thermostat and a washer per home, sends their telemetry,
    /// and obeys the commands that come back, printing how the homes converge.
    Devices {
        /// Telemetry topic.
        #[arg(long, default_value = "telemetry")]
        topic: String,
        /// Registry topic (compacted).
        #[arg(long, default_value = "devices")]
        devices_topic: String,
        /// Command topics are `<prefix>thermostat` and `<prefix>washer`.
        #[arg(long, default_value = "device-commands.")]
        commands_prefix: String,
        /// Homes.
        #[arg(long, default_value_t = 20)]
        homes: u32,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Simulated seconds between two readings of a device.
        #[arg(long, default_value_t = 30)]
        step_secs: u64,
        /// Simulated time per wall-clock time.
        #[arg(long, default_value_t = 60)]
        speedup: u32,
        /// Simulated minutes to run (0: until stopped).
        #[arg(long, default_value_t = 0)]
        minutes: u64,
        /// Outdoor temperature, °C.
        #[arg(long, default_value_t = 8.0)]
        outdoor_c: f64,
    },
    /// Trades for stock-ticker: a random walk per symbol in New York trading hours.
    Trades {
        /// Topic to write.
        #[arg(long, default_value = "trades")]
        topic: String,
        /// Number of records.
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// Records per second (0: as fast as possible).
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Distinct symbols.
        #[arg(long, default_value_t = 50)]
        symbols: u32,
        /// Event time of the first trade (RFC 3339; moved into trading hours).
        #[arg(long, default_value = "2026-11-23T14:30:00Z")]
        start: chrono::DateTime<chrono::Utc>,
        /// Event-time milliseconds between trades.
        #[arg(long, default_value_t = 20)]
        spacing_ms: i64,
        /// Share of trades up to two minutes out of order (0..1).
        #[arg(long, default_value_t = 0.01)]
        out_of_order: f64,
        /// Share of trades a session late (0..1).
        #[arg(long, default_value_t = 0.0)]
        late: f64,
        /// Share of unkeyed records (0..1).
        #[arg(long, default_value_t = 0.0)]
        unkeyed: f64,
        /// Share of malformed records (0..1).
        #[arg(long, default_value_t = 0.0)]
        malformed: f64,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let props = streamcore::runtime::parse_kafka_properties(&cli.kafka_properties).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Transactions { topic, count, rate, seed, accounts, high_value, malformed } => {
            let opts = transactions::Options {
                seed,
                count,
                accounts,
                high_value_share: high_value,
                malformed_share: malformed,
                ..Default::default()
            };
            let sent = loadgen::produce::produce(&cli.bootstrap, &props, &topic, transactions::generate(&opts), Some(rate))?;
            tracing::info!(sent, topic, "done");
        }
        Command::Cards { topic, profiles_topic, blocklist_topic, count, cards: n, rate, seed, fraud_rate, malformed, truth } => {
            let opts = cards::Options { seed, cards: n, transactions: count, fraud_rate, malformed_share: malformed, ..Default::default() }
                .ending_by(chrono::Utc::now());
            let mut file = truth.map(std::fs::File::create).transpose()?.map(std::io::BufWriter::new);
            let mut failed = None;
            let records = cards::generate(&opts).map(|e| {
                if let (Some(f), Some(id), None) = (file.as_mut(), &e.txn_id, e.malformed) {
                    if let Err(err) = writeln!(f, "{}", serde_json::json!({"txn_id": id, "expected": e.expected})) {
                        failed.get_or_insert(err);
                    }
                }
                e.outgoing([&topic, &profiles_topic, &blocklist_topic])
            });
            let sent = loadgen::produce::produce_all(&cli.bootstrap, &props, records, Some(rate))?;
            if let Some(err) = failed {
                return Err(err.into());
            }
            if let Some(mut f) = file {
                f.flush()?;
            }
            tracing::info!(sent, topic, profiles_topic, "done");
        }
        Command::Devices { topic, devices_topic, commands_prefix, homes, seed, step_secs, speedup, minutes, outdoor_c } => {
            let step = std::time::Duration::from_secs(step_secs.max(1));
            let opts = devices::Options { seed, homes, step, outdoor_c, start: chrono::Utc::now() };
            let topics = devices::Topics {
                telemetry: topic,
                commands: ["thermostat", "washer"].iter().map(|k| format!("{commands_prefix}{k}")).collect(),
            };
            let mut sim = devices::Simulation::new(&opts);
            devices::register(&cli.bootstrap, &props, &devices_topic, &sim)?;
            let pace = step / speedup.max(1);
            let mut last_minute = -1;
            devices::closed_loop(&cli.bootstrap, &props, &topics, &mut sim, pace, |sim| {
                let elapsed = (sim.now() - opts.start).num_minutes();
                if elapsed != last_minute {
                    last_minute = elapsed;
                    println!("{}", sim.summary());
                }
                minutes == 0 || elapsed < minutes as i64
            })?;
        }
        Command::Trades { topic, count, rate, seed, symbols, start, spacing_ms, out_of_order, late, unkeyed, malformed } => {
            let opts = trades::Options {
                seed,
                count,
                symbols,
                start,
                spacing_ms,
                out_of_order_share: out_of_order,
                late_share: late,
                unkeyed_share: unkeyed,
                malformed_share: malformed,
            };
            let sent = loadgen::produce::produce(&cli.bootstrap, &props, &topic, trades::generate(&opts), Some(rate))?;
            tracing::info!(sent, topic, "done");
        }
    }
    Ok(())
}
