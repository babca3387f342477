//! Wiring: the topology on the runtime, the HTTP server, a graceful shutdown.

use crate::config::Config;
use crate::topology::{build_topology, Settings};
use anyhow::Context;
use std::future::Future;
use std::time::Duration;
use streamcore::{Runtime, StreamsConfig};

/// Run the service until `shutdown` completes or the stream thread fails.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let without_profile = prometheus::IntCounter::new(
        "fraud_transactions_without_profile_total",
        "Transactions on cards that had no profile yet (checked by the rules that need none)",
    )?;
    registry.register(Box::new(without_profile.clone()))?;
    let settings = Settings {
        application_id: cfg.application_id.clone(),
        topic_prefix: cfg.topic_prefix.clone(),
        thresholds: cfg.thresholds(),
        fx: cfg.fx.clone(),
        without_profile,
    };
    let mut streams = StreamsConfig::new("fraud-detection", &cfg.bootstrap);
    streams.kafka_properties = cfg.kafka_properties().map_err(anyhow::Error::msg)?;
    streams.state_dir = cfg.state_dir.clone();
    streams.timestamp_mode = cfg.timestamp;
    streams.commit_interval = Duration::from_millis(cfg.commit_interval_ms);

    let runtime = Runtime::new(build_topology(&settings)?, streams, &registry)?;
    let router = streamcore::http::with_common_routes(crate::http::app(runtime.stores()), registry, &[&runtime])?;
    let listener = tokio::net::TcpListener::bind(cfg.http).await.with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %listener.local_addr()?, "fraud-detection listening");
    streamcore::service::serve(vec![runtime], router, listener, shutdown).await?;
    Ok(())
}
