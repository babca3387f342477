//! Command line and environment, following the contract's conventions for every service.

use crate::topology::Settings;
use chrono_tz::Tz;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;
use streamcore::service::{parse_duration, DurationOrOff, ServiceArgs};
use streamcore::TopicNames;

/// `stock-ticker`: daily statistics per symbol in the exchange's time zone, moving windows, and the top-10.
#[derive(Debug, Clone, Parser)]
#[command(name = "stock-ticker", version, about)]
pub struct Config {
    /// The options every service has.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// HTTP listen address.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8082")]
    pub http: SocketAddr,
    /// The exchange's IANA time zone: trading days begin and end at its midnight.
    #[arg(long, env = "TIMEZONE", default_value = "America/New_York")]
    pub timezone: Tz,
    /// How long after a day ends its trades still count (`30s`, `15m`, `4h`).
    #[arg(long, env = "GRACE", default_value = "4h", value_parser = parse_duration)]
    pub grace: Duration,
    /// Moving window size.
    #[arg(long, env = "WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub window: Duration,
    /// Moving window advance.
    #[arg(long, env = "ADVANCE", default_value = "1m", value_parser = parse_duration)]
    pub advance: Duration,
    /// How long after a moving window ends its trades still count.
    #[arg(long, env = "MOVING_GRACE", default_value = "5m", value_parser = parse_duration)]
    pub moving_grace: Duration,
    /// Close due windows on the wall clock after this long without trades on a partition (`off` to wait for
    /// stream time only).
    #[arg(long, env = "CLOSE_WHEN_IDLE", default_value = "5m")]
    pub close_when_idle: DurationOrOff,
    /// Topic names (`trades`, `stock-daily-stats`, ...) and their prefixes.
    #[command(flatten)]
    pub topics: TopicNames,
}

impl Config {
    /// The topologies' settings.
    pub fn settings(&self) -> Settings {
        Settings {
            application_id: self.service.application_id("stock-ticker"),
            topics: self.topics.clone(),
            timezone: self.timezone,
            grace: self.grace,
            window: self.window,
            advance: self.advance,
            moving_grace: self.moving_grace,
            close_when_idle: self.close_when_idle.0,
        }
    }
}
