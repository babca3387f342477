//! Command line and environment, following the contract's conventions for every service.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use streamcore::money::{FxRates, Money};
use streamcore::time::TimestampMode;

/// `txn-mailer`: transactions at or above a threshold become an email to the sales rep.
#[derive(Debug, Clone, Parser)]
#[command(name = "txn-mailer", version, about)]
pub struct Config {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "localhost:9092")]
    pub bootstrap: String,
    /// Extra librdkafka property (repeatable), e.g. `security.protocol=SASL_SSL`.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    pub kafka_property: Vec<String>,
    /// Extra librdkafka properties, comma-separated `key=value`.
    #[arg(long, env = "KAFKA_PROPERTIES", default_value = "")]
    pub kafka_properties: String,
    /// Consumer group and internal-topic prefix; a new id reprocesses the input from the start.
    #[arg(long, env = "APPLICATION_ID", default_value = "txn-mailer")]
    pub application_id: String,
    /// Where local state (RocksDB) lives.
    #[arg(long, env = "STATE_DIR", default_value = "state")]
    pub state_dir: PathBuf,
    /// HTTP listen address.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http: SocketAddr,
    /// Alert threshold, `AMOUNT [CURRENCY]`; inclusive.
    #[arg(long, env = "THRESHOLD", default_value = "10000.00 USD")]
    pub threshold: Money,
    /// Conversion rates to USD, `EUR=1.08,GBP=1.27`; a currency without a rate is rejected to the dead-letter topic.
    #[arg(long, env = "FX_RATES", default_value = "")]
    pub fx: FxRates,
    /// Recipient for transactions that name no sales rep.
    #[arg(long, env = "DEFAULT_REP")]
    pub default_rep: Option<String>,
    /// SMTP server URL, e.g. `smtp://localhost:1025`.
    #[arg(long, env = "SMTP_URL", required_unless_present = "outbox")]
    pub smtp_url: Option<String>,
    /// Write emails as `.eml` files into this directory instead of sending them.
    #[arg(long, env = "MAIL_OUTBOX", conflicts_with = "smtp_url")]
    pub outbox: Option<PathBuf>,
    /// Sender address.
    #[arg(long, env = "MAIL_FROM", default_value = "txn-mailer@localhost")]
    pub mail_from: String,
    /// Which time is event time: `payload` (the `ts` field) or `record` (the Kafka record timestamp).
    #[arg(long, env = "TIMESTAMP", default_value = "payload")]
    pub timestamp: TimestampMode,
    /// Input topic.
    #[arg(long, env = "INPUT_TOPIC", default_value = "transactions")]
    pub input_topic: String,
    /// Audit topic for sent alerts.
    #[arg(long, env = "ALERTS_TOPIC", default_value = "high-value-alerts")]
    pub alerts_topic: String,
    /// Commit interval in milliseconds.
    #[arg(long, env = "COMMIT_INTERVAL_MS", default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Config {
    /// All librdkafka pass-through properties, from both options.
    pub fn kafka_properties(&self) -> Result<Vec<(String, String)>, String> {
        streamcore::runtime::parse_kafka_property_options(&self.kafka_properties, &self.kafka_property)
    }
}
