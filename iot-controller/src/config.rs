//! Command line and environment, following the contract's conventions for every service.

use crate::topology::Settings;
use chrono_tz::Tz;
use clap::Parser;
use rust_decimal::Decimal;
use std::net::SocketAddr;
use std::time::Duration;
use streamcore::service::{parse_duration, DurationOrOff, ServiceArgs};
use streamcore::TopicNames;

/// `iot-controller`: telemetry joined with a device registry becomes commands routed to devices.
#[derive(Debug, Clone, Parser)]
#[command(name = "iot-controller", version, about)]
pub struct Config {
    /// The options every service has.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// HTTP listen address.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8084")]
    pub http: SocketAddr,
    /// The bearer token of `POST /devices/{device_id}/commands`; without one the endpoint is off.
    #[arg(long, env = "IOT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Temperature window size.
    #[arg(long, env = "WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub window: Duration,
    /// Temperature window advance.
    #[arg(long, env = "ADVANCE", default_value = "1m", value_parser = parse_duration)]
    pub advance: Duration,
    /// How long after a window ends its readings still count.
    #[arg(long, env = "GRACE", default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Close due windows on the wall clock after this long without telemetry on a partition (`off`: stream time only).
    #[arg(long, env = "CLOSE_WHEN_IDLE", default_value = "1m")]
    pub close_when_idle: DurationOrOff,
    /// A washer below this detergent level (percent) gets `reorder_detergent`, once per calendar day.
    #[arg(long, env = "REORDER_BELOW", default_value = "10")]
    pub reorder_below: Decimal,
    /// The zone of the calendar days that limit reorders.
    #[arg(long, env = "TIMEZONE", default_value = "UTC")]
    pub timezone: Tz,
    /// Topic names (`telemetry`, `device-commands.<type>`, ...) and their prefixes.
    #[command(flatten)]
    pub topics: TopicNames,
}

impl Config {
    /// The topology's settings, counting unknown devices in `unknown_devices`.
    pub fn settings(&self, unknown_devices: prometheus::IntCounter) -> Settings {
        Settings {
            topics: self.topics.clone(),
            window: self.window,
            advance: self.advance,
            grace: self.grace,
            close_when_idle: self.close_when_idle.0,
            reorder_below: self.reorder_below,
            timezone: self.timezone,
            ..Settings::new(&self.service.application_id("iot-controller"), unknown_devices)
        }
    }
}
