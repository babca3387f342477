//! Wiring: the topology on the runtime, the HTTP server, a graceful shutdown.

use crate::config::Config;
use crate::topology::{build_topology, Settings, ALERTS_STORE, CARDS_STORE};
use anyhow::Context;
use std::future::Future;
use streamcore::http::{GatheredRoute, KeyedRoute};
use streamcore::Runtime;

/// Run the service until `shutdown` completes or the stream thread fails.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let without_profile = prometheus::IntCounter::new(
        "fraud_transactions_without_profile_total",
        "Transactions on cards that had no profile yet (checked by the rules that need none)",
    )?;
    registry.register(Box::new(without_profile.clone()))?;
    let settings = Settings {
        application_id: cfg.service.application_id("fraud-detection"),
        topics: cfg.topics.clone(),
        thresholds: cfg.thresholds(),
        fx: cfg.fx.clone(),
        without_profile,
    };
    let mut streams = cfg.service.streams_config("fraud-detection").map_err(anyhow::Error::msg)?;
    streams.topics.clone_from(&cfg.topics);

    let runtime = Runtime::new(build_topology(&settings)?, streams, &registry)?;
    let mut routes = crate::http::app(runtime.stores());
    if let Some(routing) = runtime.routing(CARDS_STORE)? {
        let keyed = KeyedRoute { path: "/cards/{card_id}", param: "card_id", normalize: str::to_owned, routing };
        routes = streamcore::http::route_by_key(routes, vec![keyed]);
    }
    if let Some(routing) = runtime.routing(ALERTS_STORE)? {
        let alerts = GatheredRoute { path: "/alerts", merge: crate::http::newest_alerts, routing };
        routes = streamcore::http::gather_lists(routes, vec![alerts]);
    }
    let router = streamcore::http::with_common_routes(routes, registry, &runtime)?;
    let listener = tokio::net::TcpListener::bind(cfg.http).await.with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %listener.local_addr()?, "fraud-detection listening");
    streamcore::service::serve(runtime, router, listener, shutdown).await?;
    Ok(())
}
