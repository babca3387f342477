//! Wiring: the mailer, the topology on the runtime's stream thread, the HTTP server, and a shutdown that stops
//! polling, finishes the record in hand, flushes, commits and closes the stores before the process exits.

use crate::config::Config;
use crate::mailer::Mailer;
use crate::topology::{build_topology, Settings};
use anyhow::Context;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;
use streamcore::{Runtime, StreamsConfig};

/// Run the service until `shutdown` completes or the stream thread fails.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let mailer = match (&cfg.smtp_url, &cfg.outbox) {
        (Some(url), _) => Mailer::smtp(url, &cfg.mail_from)?,
        (None, Some(dir)) => Mailer::outbox(dir, &cfg.mail_from)?,
        (None, None) => anyhow::bail!("either --smtp-url or --outbox is required"),
    };
    let settings = Settings {
        application_id: cfg.application_id.clone(),
        input_topic: cfg.input_topic.clone(),
        alerts_topic: cfg.alerts_topic.clone(),
        threshold: cfg.threshold.clone(),
        fx: cfg.fx.clone(),
        default_rep: cfg.default_rep.clone(),
    };
    let topology = build_topology(&settings, Arc::new(mailer))?;
    let mut streams = StreamsConfig::new("txn-mailer", &cfg.bootstrap);
    streams.kafka_properties = cfg.kafka_properties().map_err(anyhow::Error::msg)?;
    streams.state_dir = cfg.state_dir.clone();
    streams.timestamp_mode = cfg.timestamp;
    streams.commit_interval = Duration::from_millis(cfg.commit_interval_ms);

    let registry = prometheus::Registry::new();
    let runtime = Runtime::new(topology, streams, &registry)?;
    let router = streamcore::http::with_common_routes(crate::http::app(runtime.stores()), runtime.status(), registry, &runtime.topology())?;
    let listener = tokio::net::TcpListener::bind(cfg.http).await.with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %listener.local_addr()?, "txn-mailer listening");

    let stop = runtime.shutdown_handle();
    let stream_thread = runtime.spawn()?;
    let stopped = Arc::new(tokio::sync::Notify::new());
    let server = {
        let stopped = stopped.clone();
        tokio::spawn(axum::serve(listener, router).with_graceful_shutdown(async move { stopped.notified().await }).into_future())
    };
    let mut join = tokio::task::spawn_blocking(move || stream_thread.join());
    let joined = tokio::select! {
        joined = &mut join => joined,
        () = shutdown => {
            tracing::info!("shutdown requested");
            stop.trigger();
            join.await
        }
    };
    stopped.notify_one();
    server.await.context("HTTP server task")?.context("HTTP server")?;
    match joined {
        Ok(Ok(result)) => result.context("stream thread"),
        Ok(Err(_)) => anyhow::bail!("the stream thread panicked"),
        Err(e) => anyhow::bail!("joining the stream thread: {e}"),
    }
}
