//! The HTTP endpoints every service shares (`/healthz`, `/readyz`, `/metrics`, `/topology`), the JSON error type
//! handlers return, and a middleware that counts requests by method, matched path and status. The queries that
//! reach other instances live beside it: a keyed query answered by the key's owner ([`keyed`]), a list gathered
//! from every owner ([`gather`]), and the client both ask with ([`peer`]).

pub mod gather;
pub mod keyed;
pub mod peer;

pub use gather::{gather_lists, GatheredRoute};
pub use keyed::{route_by_key, KeyedRoute};

use crate::runtime::RuntimeStatus;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};
use std::sync::Arc;

/// An error answered as `{"error": "..."}` with a status code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the caller.
    pub message: String,
}

impl ApiError {
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into() }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
    /// 500, for failures of local state.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }
}

impl From<crate::state::StoreError> for ApiError {
    fn from(e: crate::state::StoreError) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

#[derive(Clone)]
struct Common {
    status: RuntimeStatus,
    topology: Arc<crate::Topology>,
    /// The partition counts once the runtime has checked them: for the tasks `/topology` lists.
    partitions: Arc<std::sync::OnceLock<crate::runtime::Partitions>>,
    registry: Registry,
    text: Arc<str>,
    mermaid: Arc<str>,
}

#[derive(serde::Deserialize)]
struct TopologyQuery {
    format: Option<String>,
}

/// The shared endpoints, to merge into a service's router, plus request metrics and a JSON 404 fallback:
/// `/readyz` and `/topology` describe `runtime`, the service's one application.
pub fn with_common_routes(service: Router, registry: Registry, runtime: &crate::Runtime) -> Result<Router, prometheus::Error> {
    let requests = IntCounterVec::new(
        Opts::new("http_requests_total", "HTTP requests by method, matched path and status"),
        &["method", "path", "status"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    let topology = runtime.topology();
    let (text, mermaid) = (topology.describe().into(), topology.to_mermaid().into());
    let common = Common { status: runtime.status(), topology, partitions: runtime.partitions(), registry, text, mermaid };
    let shared = Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({ "status": "up" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/topology", get(topology_text))
        .with_state(common);
    Ok(service.merge(shared).fallback(|| async { ApiError::not_found("no such endpoint") }).layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let requests = requests.clone();
            async move {
                let method = req.method().to_string();
                let path = req.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
                let response = next.run(req).await;
                requests.with_label_values(&[&method, &path, response.status().as_str()]).inc();
                response
            }
        },
    )))
}

async fn readyz(State(c): State<Common>) -> Response {
    let names = |tasks: std::collections::BTreeSet<crate::task_id::TaskId>| tasks.iter().map(ToString::to_string).collect::<Vec<_>>();
    let body = Json(serde_json::json!({
        "phase": format!("{:?}", c.status.phase()),
        "tasks": c.status.tasks(),
        "active": names(c.status.active()),
        "restoring": names(c.status.restoring()),
    }));
    let code = if c.status.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body).into_response()
}

async fn metrics(State(c): State<Common>) -> Response {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&c.registry.gather(), &mut buf) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], buf).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

async fn topology_text(State(c): State<Common>, Query(q): Query<TopologyQuery>) -> Response {
    match q.format.as_deref() {
        None | Some("text") => {
            let mut text = c.text.to_string();
            if let Some(partitions) = c.partitions.get() {
                text.push_str(&c.topology.describe_tasks(partitions, &c.status.active(), &c.status.restoring()));
            }
            text.into_response()
        }
        Some("mermaid") => c.mermaid.to_string().into_response(),
        Some(other) => ApiError::bad_request(format!("unknown format {other:?}: use text or mermaid")).into_response(),
    }
}
