//! Command line and environment, following the contract's conventions for every service.

use crate::rules::Thresholds;
use chrono_tz::Tz;
use clap::Parser;
use rust_decimal::Decimal;
use std::net::SocketAddr;
use streamcore::money::FxRates;
use streamcore::service::ServiceArgs;
use streamcore::TopicNames;

/// `fraud-detection`: anomaly rules over card transactions joined with card profiles.
#[derive(Debug, Clone, Parser)]
#[command(name = "fraud-detection", version, about)]
pub struct Config {
    /// The options every service has.
    #[command(flatten)]
    pub service: ServiceArgs,
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
    /// Topic names (`card-transactions`, `fraud-alerts`, ...) and their prefixes.
    #[command(flatten)]
    pub topics: TopicNames,
}

impl Config {
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
