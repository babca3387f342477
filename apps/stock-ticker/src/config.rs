//! Command line and environment, following the contract's conventions for every service.

use crate::topology::Settings;
use chrono_tz::Tz;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;
use streamcore::service::ServiceArgs;

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
    pub close_when_idle: IdleClose,
    /// Prepended to every topic the service reads or writes (`trades`, `stock-daily-stats`, ...), so that
    /// several deployments can share a cluster.
    #[arg(long, env = "TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
}

impl Config {
    /// The topologies' settings.
    pub fn settings(&self) -> Settings {
        Settings {
            application_id: self.service.application_id("stock-ticker"),
            topic_prefix: self.topic_prefix.clone(),
            timezone: self.timezone,
            grace: self.grace,
            window: self.window,
            advance: self.advance,
            moving_grace: self.moving_grace,
            close_when_idle: self.close_when_idle.0,
        }
    }
}

/// `500ms`, `30s`, `5m`, `4h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a duration such as 30s, 5m, 4h"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    };
    n.checked_mul(ms).map(Duration::from_millis).ok_or_else(|| format!("{s:?} is too long"))
}

/// `--close-when-idle`: a duration, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleClose(pub Option<Duration>);

impl std::str::FromStr for IdleClose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            Ok(IdleClose(None))
        } else {
            parse_duration(s).map(|d| IdleClose(Some(d)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!("off".parse::<IdleClose>(), Ok(IdleClose(None)));
        assert_eq!("90s".parse::<IdleClose>(), Ok(IdleClose(Some(Duration::from_secs(90)))));
        assert!(parse_duration("4").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }
}
