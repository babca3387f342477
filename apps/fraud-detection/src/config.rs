//! Command line and environment, following the contract's conventions for every service.

use crate::rules::Thresholds;
use chrono_tz::Tz;
use clap::Parser;
use rust_decimal::Decimal;
use std::net::SocketAddr;
use std::path::PathBuf;
use streamcore::money::FxRates;
use streamcore::time::TimestampMode;

/// `fraud-detection`: anomaly rules over card transactions joined with card profiles.
#[derive(Debug, Clone, Parser)]
#[command(name = "fraud-detection", version, about)]
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
    /// Consumer group and internal-topic prefix.
    #[arg(long, env = "APPLICATION_ID", default_value = "fraud-detection")]
    pub application_id: String,
    /// Where local state (RocksDB) lives.
    #[arg(long, env = "STATE_DIR", default_value = "state")]
    pub state_dir: PathBuf,
    /// HTTP listen address.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8083")]
    pub http: SocketAddr,
    /// `velocity`: more than this many transactions on a card within 10 minutes.
    #[arg(long, env = "MAX_TXNS", default_value_t = 5)]
    pub max_txns: usize,
    /// `impossible_travel`: implied speed between consecutive transactions above this (km/h).
    #[arg(long, env = "MAX_SPEED_KMH", default_value_t = 900.0)]
    pub max_speed_kmh: f64,
    /// `amount_anomaly`: standard deviations above the card's mean amount.
    #[arg(long, env = "ANOMALY_SIGMAS", default_value = "4")]
    pub anomaly_sigmas: Decimal,
    /// `amount_anomaly`: and at least this multiple of the mean.
    #[arg(long, env = "ANOMALY_RATIO", default_value = "3")]
    pub anomaly_ratio: Decimal,
    /// `amount_anomaly`: earlier amounts a card needs before it is judged.
    #[arg(long, env = "ANOMALY_MIN_HISTORY", default_value_t = 10)]
    pub anomaly_min_history: u64,
    /// The zone whose calendar days `daily_limit` counts.
    #[arg(long, env = "TIMEZONE", default_value = "UTC")]
    pub timezone: Tz,
    /// Conversion rates to USD, `EUR=1.08,GBP=1.27`; a currency without a rate is dead-lettered.
    #[arg(long, env = "FX_RATES", default_value = "")]
    pub fx: FxRates,
    /// Which time is event time: `payload` (the `ts` field) or `record` (the Kafka record timestamp).
    #[arg(long, env = "TIMESTAMP", default_value = "payload")]
    pub timestamp: TimestampMode,
    /// Prepended to every topic the service reads or writes, so several deployments can share a cluster.
    #[arg(long, env = "TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
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

    /// The rules' thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            max_txns: self.max_txns,
            max_speed_kmh: self.max_speed_kmh,
            anomaly_sigmas: self.anomaly_sigmas,
            anomaly_ratio: self.anomaly_ratio,
            anomaly_min_history: self.anomaly_min_history,
            timezone: self.timezone,
            ..Thresholds::default()
        }
    }
}
