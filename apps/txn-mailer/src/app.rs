//! Wiring: the mailer, the topology on the runtime's stream thread, the HTTP server, and a shutdown that stops
//! polling, finishes the record in hand, flushes, commits and closes the stores before the process exits.

use crate::config::Config;
use crate::mailer::Mailer;
use crate::topology::{build_topology, Settings, RECENT_STORE, STATS_STORE};
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use streamcore::http::GatheredRoute;
use streamcore::Runtime;

/// Run the service until `shutdown` completes or the stream thread fails.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let mailer = match (&cfg.smtp_url, &cfg.outbox) {
        (Some(url), _) => Mailer::smtp(url, &cfg.mail_from)?,
        (None, Some(dir)) => Mailer::outbox(dir, &cfg.mail_from)?,
        (None, None) => anyhow::bail!("either --smtp-url or --outbox is required"),
    };
    let settings = Settings {
        application_id: cfg.service.application_id("txn-mailer"),
        input_topic: cfg.input_topic.clone(),
        alerts_topic: cfg.alerts_topic.clone(),
        threshold: cfg.threshold.clone(),
        fx: cfg.fx.clone(),
        default_rep: cfg.default_rep.clone(),
    };
    let topology = build_topology(&settings, Arc::new(mailer))?;
    let streams = cfg.service.streams_config("txn-mailer").map_err(anyhow::Error::msg)?;

    let registry = prometheus::Registry::new();
    let runtime = Runtime::new(topology, streams, &registry)?;
    let mut routes = crate::http::app(runtime.stores());
    if let (Some(recent), Some(stats)) = (runtime.routing(RECENT_STORE)?, runtime.routing(STATS_STORE)?) {
        let recent = GatheredRoute { path: "/alerts/recent", merge: crate::http::newest_alerts, routing: recent };
        let stats = GatheredRoute { path: "/stats", merge: crate::http::total_stats, routing: stats };
        routes = streamcore::http::gather_lists(routes, vec![recent, stats]);
    }
    let router = streamcore::http::with_common_routes(routes, registry, &runtime)?;
    let listener = tokio::net::TcpListener::bind(cfg.http).await.with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %listener.local_addr()?, "txn-mailer listening");

    streamcore::service::serve(runtime, router, listener, shutdown).await?;
    Ok(())
}
