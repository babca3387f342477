//! Wiring: two runtimes in one process, stage 1 over `trades` and stage 2 over `stock-daily-changes`, each with
//! its own consumer group and tasks, behind one HTTP server that answers from both stages' stores.

use crate::config::Config;
use crate::topology::{ranking_topology, trades_topology};
use anyhow::Context;
use std::future::Future;
use streamcore::http::KeyedRoute;
use streamcore::Runtime;

/// Run the service until `shutdown` completes or a stream thread fails.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let settings = cfg.settings();
    let mut streams = cfg.service.streams_config("stock-ticker").map_err(anyhow::Error::msg)?;
    streams.topic_prefix.clone_from(&cfg.topic_prefix);

    let registry = prometheus::Registry::new();
    let trades = Runtime::new(trades_topology(&settings)?, streams.clone(), &registry)?;
    let ranking = Runtime::new(ranking_topology(&settings)?, streams, &registry)?;
    let mut routes = crate::http::app(trades.stores(), ranking.stores());
    if let (Some(stage1), Some(stage2)) = (trades.routing(), ranking.routing()) {
        // A symbol's statistics live in stage 1, keyed by the upper-cased symbol; the top-10 lists in stage 2, whose
        // one partition has one owner: another instance's stage 2 may own nothing and must ask it.
        let keyed = ["/stocks/{symbol}", "/stocks/{symbol}/days/{date}", "/stocks/{symbol}/moving"].map(|path| KeyedRoute {
            path,
            param: "symbol",
            normalize: str::to_ascii_uppercase,
            routing: stage1.clone(),
        });
        let top10 =
            ["/top10", "/top10/{date}"].map(|path| KeyedRoute { path, param: "", normalize: str::to_owned, routing: stage2.clone() });
        routes = streamcore::http::route_by_key(routes, keyed.into_iter().chain(top10).collect());
    }
    let router = streamcore::http::with_common_routes(routes, registry, &[&trades, &ranking])?;
    let listener = tokio::net::TcpListener::bind(cfg.http).await.with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %listener.local_addr()?, "stock-ticker listening");
    streamcore::service::serve(vec![trades, ranking], router, listener, shutdown).await?;
    Ok(())
}
