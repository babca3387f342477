//! `loadgen`: writes seeded synthetic load to the suite's input topics.

use clap::{Parser, Subcommand};
use loadgen::transactions::{self, Options};

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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let props = streamcore::runtime::parse_kafka_properties(&cli.kafka_properties).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Transactions { topic, count, rate, seed, accounts, high_value, malformed } => {
            let opts = Options { seed, count, accounts, high_value_share: high_value, malformed_share: malformed, ..Options::default() };
            let sent = loadgen::produce::produce(&cli.bootstrap, &props, &topic, transactions::generate(&opts), Some(rate))?;
            tracing::info!(sent, topic, "done");
        }
    }
    Ok(())
}
