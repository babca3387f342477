//! A service process: the options every service shares ([`ServiceArgs`]: the contract's conventions), its
//! runtime (one application) on its stream threads, its HTTP server, and one shutdown that stops polling, lets
//! the runtime finish the record in hand, commit and close its stores, then stops the server. If the runtime
//! fails, the failure is returned.

use crate::error::StreamError;
use crate::runtime::Guarantee;
use crate::state::budget::MemoryBudget;
use crate::time::TimestampMode;
use crate::{Runtime, StreamsConfig};
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The command-line options (and environment variables) every service has; flatten them into its own.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "localhost:9092")]
    pub bootstrap: String,
    /// Extra librdkafka property (repeatable), e.g. `security.protocol=SASL_SSL`.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    pub kafka_property: Vec<String>,
    /// Extra librdkafka properties, comma-separated `key=value`.
    #[arg(long, env = "KAFKA_PROPERTIES", default_value = "")]
    pub kafka_properties: String,
    /// Consumer group and internal-topic prefix (default: the service's name); a new id reprocesses the input
    /// from the start.
    #[arg(long, env = "APPLICATION_ID")]
    pub application_id: Option<String>,
    /// Where local state (RocksDB) lives.
    #[arg(long, env = "STATE_DIR", default_value = "state")]
    pub state_dir: PathBuf,
    /// Which time is event time: `payload` (the `ts` field) or `record` (the Kafka record timestamp).
    #[arg(long, env = "TIMESTAMP", default_value = "payload")]
    pub timestamp: TimestampMode,
    /// Commit interval in milliseconds.
    #[arg(long, env = "COMMIT_INTERVAL_MS", default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// This instance's HTTP address as the others reach it (`http://host:port`): ownership is published and a
    /// query for a key another instance owns is answered through that instance.
    #[arg(long, env = "ADVERTISED_URL")]
    pub advertised_url: Option<String>,
    /// Stream threads: the instance's tasks (one per input partition) spread over this many threads.
    #[arg(long, env = "THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Standby replicas: warm copies of each stateful task kept on this many other instances, so a failover
    /// replays only what the copy lacks (needs `--advertised-url`).
    #[arg(long, env = "STANDBY_REPLICAS", default_value_t = 0)]
    pub standby_replicas: usize,
    /// Processing guarantee: `at-least-once`, or `exactly-once` (outputs, state and input offsets commit in one
    /// Kafka transaction; readers need `isolation.level=read_committed`).
    #[arg(long, env = "PROCESSING_GUARANTEE", value_enum, default_value_t = Guarantee::AtLeastOnce)]
    pub guarantee: Guarantee,
    /// How far ahead of the wall clock an event time may be (`off`: unbounded): a record further ahead is
    /// dead-lettered, so a wrong clock or year cannot move stream time to the future.
    #[arg(long, env = "MAX_FUTURE", default_value = "1d")]
    pub max_future: DurationOrOff,
    /// Memory for all RocksDB stores of this instance together, block cache and write buffers (`off`: each
    /// store on RocksDB's own defaults, unbounded).
    #[arg(long, env = "STATE_MEMORY", default_value_t = MemoryBudget::DEFAULT)]
    pub state_memory: MemoryBudget,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl ServiceArgs {
    /// Defaults, against `bootstrap`.
    pub fn new(bootstrap: &str) -> Self {
        ServiceArgs {
            bootstrap: bootstrap.to_owned(),
            kafka_property: Vec::new(),
            kafka_properties: String::new(),
            application_id: None,
            state_dir: PathBuf::from("state"),
            timestamp: TimestampMode::default(),
            commit_interval_ms: 1000,
            threads: 1,
            advertised_url: None,
            standby_replicas: 0,
            guarantee: Guarantee::AtLeastOnce,
            max_future: DurationOrOff(Some(crate::runtime::DEFAULT_MAX_FUTURE)),
            state_memory: MemoryBudget::DEFAULT,
            log_format: "text".into(),
        }
    }

    /// The application id: the option, or the service's name.
    pub fn application_id(&self, service: &str) -> String {
        self.application_id.clone().unwrap_or_else(|| service.to_owned())
    }

    /// The runtime configuration of `service` these options describe.
    pub fn streams_config(&self, service: &str) -> Result<StreamsConfig, String> {
        let mut c = StreamsConfig::new(service, &self.bootstrap);
        c.kafka_properties = crate::runtime::parse_kafka_property_options(&self.kafka_properties, &self.kafka_property)?;
        c.state_dir = self.state_dir.clone();
        c.timestamp_mode = self.timestamp;
        c.commit_interval = Duration::from_millis(self.commit_interval_ms);
        c.threads = usize::from(self.threads);
        c.advertised_url = self.advertised_url.clone();
        c.standby_replicas = self.standby_replicas;
        c.guarantee = self.guarantee;
        c.max_future = self.max_future.0;
        c.state_memory = self.state_memory;
        Ok(c)
    }
}

/// Why a service stopped other than by request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A stream thread stopped with an error.
    #[error("stream thread: {0}")]
    Stream(#[from] StreamError),
    /// A stream thread panicked.
    #[error("a stream thread panicked")]
    Panicked,
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// Run `runtime` and serve `router` on `listener` until `shutdown` completes or the runtime stops.
pub async fn serve(
    runtime: Runtime,
    router: axum::Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServiceError> {
    let stop = runtime.shutdown_handle();
    let stopped = Arc::new(tokio::sync::Notify::new());
    let server = {
        let stopped = stopped.clone();
        tokio::spawn(axum::serve(listener, router).with_graceful_shutdown(async move { stopped.notified().await }).into_future())
    };
    let thread = runtime.spawn()?;
    let mut join = tokio::task::spawn_blocking(move || thread.join());
    let joined = tokio::select! {
        joined = &mut join => {
            tracing::warn!("the runtime stopped; stopping the service");
            joined
        }
        () = shutdown => {
            tracing::info!("shutdown requested");
            stop.trigger();
            join.await
        }
    };
    let result = match joined {
        Ok(Ok(r)) => r.map_err(ServiceError::from),
        Ok(Err(_)) | Err(_) => Err(ServiceError::Panicked),
    };
    stopped.notify_one();
    match server.await {
        Ok(served) => served?,
        Err(_) => return Err(ServiceError::Panicked),
    }
    result
}

/// Log to stderr, as text or (`json`) one JSON object per line; `RUST_LOG` overrides the default levels.
pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
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

/// A duration, or `off` (`--close-when-idle`, `--max-future`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationOrOff(pub Option<Duration>);

impl std::str::FromStr for DurationOrOff {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            Ok(DurationOrOff(None))
        } else {
            parse_duration(s).map(|d| DurationOrOff(Some(d)))
        }
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!("off".parse::<DurationOrOff>(), Ok(DurationOrOff(None)));
        assert_eq!("90s".parse::<DurationOrOff>(), Ok(DurationOrOff(Some(Duration::from_secs(90)))));
        assert!(parse_duration("4").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }
}
