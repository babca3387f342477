//! Wiring: one runtime (one application, one consumer group) for the whole topology, whose three sub-topologies
//! run as tasks of their own, behind one HTTP server that answers from their stores.

use crate::config::Config;
use crate::ranking::TOP10_STORE;
use crate::topology::{topology, DAILY_STATS_STORE};
use anyhow::Context;
use std::future::Future;
use streamcore::http::KeyedRoute;
use streamcore::Runtime;

/// Run the service until `shutdown` completes or a stream thread fails.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let settings = cfg.settings();
    let mut streams = cfg.service.streams_config("stock-ticker").map_err(anyhow::Error::msg)?;
    streams.topics.clone_from(&cfg.topics);

    let registry = prometheus::Registry::new();
    let runtime = Runtime::new(topology(&settings)?, streams, &registry)?;
    let mut routes = crate::http::app(runtime.stores());
    if let (Some(statistics), Some(ranking)) = (runtime.routing(DAILY_STATS_STORE)?, runtime.routing(TOP10_STORE)?) {
        // A symbol's statistics live in the tasks of sub-topology 1, keyed by the upper-cased symbol; the top-10
        // lists in task 2_0, which one instance owns: the others must ask it.
        let keyed = ["/stocks/{symbol}", "/stocks/{symbol}/days/{date}", "/stocks/{symbol}/moving"].map(|path| KeyedRoute {
            path,
            param: "symbol",
            normalize: str::to_ascii_uppercase,
            routing: statistics.clone(),
        });
        let top10 =
            ["/top10", "/top10/{date}"].map(|path| KeyedRoute { path, param: "", normalize: str::to_owned, routing: ranking.clone() });
        routes = streamcore::http::route_by_key(routes, keyed.into_iter().chain(top10).collect());
    }
    let router = streamcore::http::with_common_routes(routes, registry, &runtime)?;
    let listener = tokio::net::TcpListener::bind(cfg.http).await.with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %listener.local_addr()?, "stock-ticker listening");
    streamcore::service::serve(runtime, router, listener, shutdown).await?;
    Ok(())
}
