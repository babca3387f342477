//! `fraud-eval`: run labelled card traffic through the fraud detector on a real broker and print precision and
//! recall per rule. `fraud-eval --seed 7` (see `--help`); the broker from `--bootstrap` or `KAFKA_BOOTSTRAP`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "fraud-eval", about = "Precision and recall of the fraud rules on labelled synthetic traffic")]
struct Cli {
    /// Kafka bootstrap servers (a real broker).
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "localhost:9092")]
    bootstrap: String,
    /// Seeds, comma-separated: one evaluation each.
    #[arg(long, default_value = "1", value_delimiter = ',')]
    seed: Vec<u64>,
    /// Cards.
    #[arg(long, default_value_t = 2000)]
    cards: u32,
    /// Transactions.
    #[arg(long, default_value_t = 100_000)]
    transactions: u64,
    /// Share of steps that inject a fraud pattern.
    #[arg(long, default_value_t = 0.01)]
    fraud_rate: f64,
    /// Event-time milliseconds between steps.
    #[arg(long, default_value_t = 5_000)]
    spacing_ms: i64,
    /// Share of transactions keyed by the customer instead of the card (repartitioning puts them right).
    #[arg(long, default_value_t = 0.02)]
    wrong_key: f64,
    /// Share of extra malformed records (dead-lettered, not scored).
    #[arg(long, default_value_t = 0.001)]
    malformed: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    streamcore::service::init_tracing("text");
    let cli = Cli::parse();
    for seed in cli.seed {
        let opts = loadgen::cards::Options {
            seed,
            cards: cli.cards,
            transactions: cli.transactions,
            fraud_rate: cli.fraud_rate,
            spacing_ms: cli.spacing_ms,
            wrong_key_share: cli.wrong_key,
            malformed_share: cli.malformed,
            ..Default::default()
        };
        let report = fraud_eval::evaluate(&cli.bootstrap, opts).await?;
        println!("{}", report.table());
    }
    Ok(())
}
