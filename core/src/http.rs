//! The HTTP endpoints every service shares (`/healthz`, `/readyz`, `/metrics`, `/topology`), the JSON error type
//! handlers return, and a middleware that counts requests by method, matched path and status.

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
    statuses: Vec<RuntimeStatus>,
    registry: Registry,
    text: Arc<str>,
    mermaid: Arc<str>,
}

#[derive(serde::Deserialize)]
struct TopologyQuery {
    format: Option<String>,
}

/// The shared endpoints, to merge into a service's router, plus request metrics and a JSON 404 fallback.
/// `runtimes` are the service's runtimes (one per stage): ready when all are, described one after the other.
pub fn with_common_routes(service: Router, registry: Registry, runtimes: &[&crate::Runtime]) -> Result<Router, prometheus::Error> {
    let requests = IntCounterVec::new(
        Opts::new("http_requests_total", "HTTP requests by method, matched path and status"),
        &["method", "path", "status"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    let text: String = runtimes.iter().map(|r| r.topology().describe()).collect::<Vec<_>>().join("\n");
    // One flowchart: a topic one stage writes and the next reads is one node, so the stages appear connected.
    let mut mermaid = String::from("flowchart LR\n");
    for r in runtimes {
        mermaid.extend(r.topology().to_mermaid().lines().skip(1).map(|l| format!("{l}\n")));
    }
    let statuses = runtimes.iter().map(|r| r.status()).collect();
    let common = Common { statuses, registry, text: text.into(), mermaid: mermaid.into() };
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
    let phases: Vec<String> = c.statuses.iter().map(|s| format!("{:?}", s.phase())).collect();
    let tasks: usize = c.statuses.iter().map(RuntimeStatus::tasks).sum();
    let body = Json(serde_json::json!({ "phase": phases.join(","), "tasks": tasks }));
    let code = if c.statuses.iter().all(RuntimeStatus::is_ready) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
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
        None | Some("text") => c.text.to_string().into_response(),
        Some("mermaid") => c.mermaid.to_string().into_response(),
        Some(other) => ApiError::bad_request(format!("unknown format {other:?}: use text or mermaid")).into_response(),
    }
}
