//! The HTTP endpoints every service shares (`/healthz`, `/readyz`, `/metrics`, `/topology`), the JSON error type
//! handlers return, a middleware that counts requests by method, matched path and status, and one that answers a
//! keyed query through the instance that owns the key ([`route_by_key`], see [`crate::routing`]).

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

/// A route whose answer depends on one key, served by the instance that owns the key.
#[derive(Clone)]
pub struct KeyedRoute {
    /// The route as registered, e.g. `/devices/{device_id}`.
    pub path: &'static str,
    /// The path parameter holding the key, e.g. `device_id`; empty for a route without one over a runtime with a
    /// single partition (the stock ticker's top-10), which that partition's owner serves.
    pub param: &'static str,
    /// The key as the topology keys records by (e.g. upper-cased symbols).
    pub normalize: fn(&str) -> String,
    /// Who owns what.
    pub routing: crate::routing::Routing,
}

/// Forward GET requests on `routes` whose key another instance owns to that instance, and return its answer.
pub fn route_by_key(router: Router, routes: Vec<KeyedRoute>) -> Router {
    let routes = Arc::new(routes);
    router.route_layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let routes = routes.clone();
        async move {
            match owner(&routes, &req) {
                Some(crate::routing::Owner::Remote(url)) => {
                    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
                    drop(req);
                    forward(&url, &target).await
                }
                Some(crate::routing::Owner::Restoring) => restoring(),
                Some(crate::routing::Owner::Local) | None => next.run(req).await,
            }
        }
    }))
}

/// Who serves a keyed GET: another instance only when the request was not forwarded already (the instance it was
/// forwarded to answers it, whatever it knows).
fn owner(routes: &[KeyedRoute], req: &Request) -> Option<crate::routing::Owner> {
    if req.method() != axum::http::Method::GET {
        return None;
    }
    let matched = req.extensions().get::<MatchedPath>()?.as_str();
    let route = routes.iter().find(|r| r.path == matched)?;
    let key = if route.param.is_empty() {
        String::new()
    } else {
        let index = route.path.split('/').position(|s| s == format!("{{{}}}", route.param))?;
        let raw = req.uri().path().split('/').nth(index)?;
        (route.normalize)(&path_key(raw)?)
    };
    match route.routing.owner(&key) {
        crate::routing::Owner::Remote(_) if req.headers().contains_key(crate::routing::FORWARDED_HEADER) => None,
        owner => Some(owner),
    }
}

/// How long a caller should wait before asking again for a key whose task is restoring.
const RESTORING_RETRY_AFTER_SECS: &str = "1";

/// 503 with `Retry-After`: the key's task is restoring, so its answer would be incomplete, and a 404 would be wrong.
fn restoring() -> Response {
    let body = Json(serde_json::json!({ "error": "the task that owns this key is restoring its state; try again shortly" }));
    (StatusCode::SERVICE_UNAVAILABLE, [(axum::http::header::RETRY_AFTER, RESTORING_RETRY_AFTER_SECS)], body).into_response()
}

/// A path segment as the key it stands for: percent-decoded once (the request is forwarded with the segment as
/// it came, so the owner decodes it once too). `None` when it is not UTF-8: served here, where the route says 400.
fn path_key(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}

/// How long a forwarded query may take, connection included, before the caller gets a 502.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn forward(url: &str, target: &str) -> Response {
    let answer = tokio::time::timeout(FORWARD_TIMEOUT, http_get(url, target, &[(crate::routing::FORWARDED_HEADER, "1")]))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {FORWARD_TIMEOUT:?}"))));
    match answer {
        Ok((status, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                // The owner's task is restoring: its Retry-After, which the plain GET does not carry back.
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static(RESTORING_RETRY_AFTER_SECS));
            }
            response
        }
        Err(e) => ApiError { status: StatusCode::BAD_GATEWAY, message: format!("the owner at {url} did not answer: {e}") }.into_response(),
    }
}

/// A plain HTTP/1.1 GET of `target` from `base` (`http://host:port` or `host:port`) with `Connection: close`:
/// (status, body). For the services' own JSON answers, which are never chunked.
pub async fn http_get(base: &str, target: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(authority).await?;
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other("no status"))?;
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Err(std::io::Error::other("a chunked answer, which the services never send"));
    }
    Ok((status, raw[split + 4..].to_vec()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::StoreRegistry;
    use crate::task_id::TaskId;
    use std::collections::BTreeSet;
    use std::future::IntoFuture;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The whole HTTP answer, head and body, to a GET of `target` with `headers`.
    async fn raw_get(addr: std::net::SocketAddr, target: &str, headers: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\r\n");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.expect("read");
        answer.to_ascii_lowercase()
    }

    #[tokio::test]
    async fn a_key_whose_task_is_restoring_answers_503_with_retry_after_not_404() {
        let status = RuntimeStatus::default();
        let routing = crate::routing::Routing {
            url: "http://this-instance".into(),
            store: "owners".into(),
            stores: StoreRegistry::default(),
            subtopology: 1,
            partitions: Arc::new(std::sync::OnceLock::from(crate::runtime::Partitions::uniform(2, 4))),
            local: Arc::new(Mutex::new((0..4).map(|p| TaskId::new(1, p)).collect())),
            status: status.clone(),
        };
        let on = |p: i32| (0..).map(|i| format!("k{i}")).find(|k| crate::partition::partition_for(k.as_bytes(), 4) == p).expect("key");
        let (restoring_key, running_key) = (on(1), on(2));
        status.thread(0).set_tasks(BTreeSet::from([TaskId::new(1, 2)]), BTreeSet::from([TaskId::new(1, 1)]));
        let things = Router::new().route("/things/{id}", get(|| async { ApiError::not_found("no such thing") }));
        let route = KeyedRoute { path: "/things/{id}", param: "id", normalize: str::to_owned, routing };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(axum::serve(listener, route_by_key(things, vec![route])).into_future());

        let restoring = raw_get(addr, &format!("/things/{restoring_key}"), "").await;
        assert!(restoring.starts_with("http/1.1 503"), "{restoring}");
        assert!(restoring.contains("retry-after: 1\r\n") && restoring.contains("restoring its state"), "{restoring}");
        let forwarded = raw_get(addr, &format!("/things/{restoring_key}"), &format!("{}: 1\r\n", crate::routing::FORWARDED_HEADER)).await;
        assert!(forwarded.starts_with("http/1.1 503"), "a query forwarded to the owner gets the 503 too: {forwarded}");
        let running = raw_get(addr, &format!("/things/{running_key}"), "").await;
        assert!(running.starts_with("http/1.1 404"), "a running task's unknown key is a plain 404: {running}");
    }

    #[test]
    fn escaped_keys_route_by_what_they_stand_for() {
        assert_eq!(path_key("card-1").as_deref(), Some("card-1"));
        assert_eq!(path_key("acc%2042").as_deref(), Some("acc 42"));
        assert_eq!(path_key("50%25").as_deref(), Some("50%"));
        assert_eq!(path_key("%E2%82%AC").as_deref(), Some("€"));
        assert_eq!(path_key("%FF"), None, "not UTF-8: served locally, where the route answers 400");
    }
}
