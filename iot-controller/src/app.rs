//! Wiring: the topology on the runtime, the read and command endpoints, a graceful shutdown.

use crate::api::{CommandApi, ManualCommands};
use crate::config::Config;
use crate::topology::{build_topology, DEVICES_STORE, HOME_INDEX_STORE};
use anyhow::Context;
use std::future::Future;
use streamcore::http::{GatheredRoute, KeyedRoute};
use streamcore::Runtime;

/// Run the service until `shutdown` completes or the stream thread fails.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let unknown =
        prometheus::IntCounter::new("iot_unknown_device_readings_total", "Readings from devices not in the registry (dead-lettered)")?;
    registry.register(Box::new(unknown.clone()))?;
    let settings = cfg.settings(unknown);
    let mut streams = cfg.service.streams_config("iot-controller").map_err(anyhow::Error::msg)?;
    streams.topics.clone_from(&cfg.topics);

    let runtime = Runtime::new(build_topology(&settings)?, streams.clone(), &registry)?;
    let manual = ManualCommands::default();
    if cfg.api_token.as_deref().is_none_or(str::is_empty) {
        tracing::warn!("no IOT_API_TOKEN: POST /devices/{{device_id}}/commands is off");
    }
    let api = CommandApi::new(cfg.api_token.clone(), &streams, settings, runtime.stores(), manual.clone())?;
    let mut reads = crate::http::routes(runtime.stores(), manual);
    if let Some(routing) = runtime.routing(DEVICES_STORE)? {
        let keyed = KeyedRoute { path: "/devices/{device_id}", param: "device_id", normalize: str::to_owned, routing };
        reads = streamcore::http::route_by_key(reads, vec![keyed]);
    }
    if let Some(routing) = runtime.routing(HOME_INDEX_STORE)? {
        let home = GatheredRoute { path: "/homes/{home_id}/devices", merge: crate::http::home_devices, routing };
        reads = streamcore::http::gather_lists(reads, vec![home]);
    }
    let routes = reads.merge(api.routes());
    let router = streamcore::http::with_common_routes(routes, registry, &runtime)?;
    let listener = tokio::net::TcpListener::bind(cfg.http).await.with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(http = %listener.local_addr()?, "iot-controller listening");
    streamcore::service::serve(runtime, router, listener, shutdown).await?;
    Ok(())
}
