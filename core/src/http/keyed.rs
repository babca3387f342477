//! A keyed query answered by the instance that owns the key ([`route_by_key`]; who owns what is
//! [`crate::routing`]'s): served here when this instance owns the key's task, forwarded to the owner when another
//! does, 503 with `Retry-After` while the task restores its state. Kafka Streams hands applications the metadata
//! and leaves the remote call to them; here it is a middleware over the service's routes.

use super::peer::{describe, PeerClient};
use super::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::sync::Arc;

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
    let client = PeerClient::new(FORWARD_TIMEOUT);
    router.route_layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let (routes, client) = (routes.clone(), client.clone());
        async move {
            match owner(&routes, &req) {
                Some(crate::routing::Owner::Remote(url)) => {
                    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
                    drop(req);
                    forward(&client, &url, &target).await
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
    restoring_retry_after((StatusCode::SERVICE_UNAVAILABLE, body).into_response())
}

/// `response` with the `Retry-After` of an answer that has to wait for a restore.
pub(super) fn restoring_retry_after(mut response: Response) -> Response {
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static(RESTORING_RETRY_AFTER_SECS));
    response
}

/// A path segment as the key it stands for: percent-decoded once (the request is forwarded with the segment as
/// it came, so the owner decodes it once too). `None` when it is not UTF-8: served here, where the route says 400.
fn path_key(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}

/// How long a forwarded query may take, connection included, before the caller gets a 502.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The owner's answer as it came (status, content type, `Retry-After`), or a 502 naming why there was none.
async fn forward(client: &PeerClient, url: &str, target: &str) -> Response {
    match client.get(url, target, &[(crate::routing::FORWARDED_HEADER, "1")]).await {
        Ok(answer) => {
            let mut response = (answer.status, answer.body).into_response();
            for name in [axum::http::header::CONTENT_TYPE, axum::http::header::RETRY_AFTER] {
                if let Some(value) = answer.headers.get(&name) {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(e) => ApiError { status: StatusCode::BAD_GATEWAY, message: format!("the owner at {url} did not answer: {}", describe(&e)) }
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::StoreRegistry;
    use crate::runtime::RuntimeStatus;
    use crate::task_id::TaskId;
    use axum::routing::get;
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
