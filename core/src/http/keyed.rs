//! A keyed query answered by the instance that owns the key ([`route_by_key`]; who owns what is
//! [`crate::routing`]'s): served here when this instance owns the key's task, forwarded to the owner when another
//! does. While nobody can answer for the task (it restores, it moves, its owner does not answer) the query gets
//! 503 with `Retry-After`, or, when the caller allows it, the answer of a standby replica, marked stale
//! ([`crate::stale`]). Kafka Streams hands applications the metadata and leaves the remote call to them; here it
//! is a middleware over the service's routes.

use super::peer::{describe, PeerClient};
use super::ApiError;
use crate::routing::Owner;
use crate::stale::{Replica, ALLOW_STALE_HEADER, STALE_HEADER};
use crate::task_id::TaskId;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
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

/// Forward GET requests on `routes` whose key another instance owns to that instance, and return its answer;
/// answer 503 with `Retry-After` for a key nobody can answer for now, or from a standby replica when the caller
/// allows a stale answer.
pub fn route_by_key(router: Router, routes: Vec<KeyedRoute>) -> Router {
    let routes = Arc::new(routes);
    let clients = Clients { patient: PeerClient::new(FORWARD_TIMEOUT), hasty: PeerClient::new(STALE_OK_FORWARD_TIMEOUT) };
    router.route_layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let (routes, clients) = (routes.clone(), clients.clone());
        async move {
            let Some(query) = keyed(&routes, &req) else { return next.run(req).await };
            let task = || query.task.map_or_else(|| "the key's task".to_owned(), |t| format!("task {t}"));
            let answer = match query.task.map_or(Owner::Unowned, |t| query.routing.owner(t)) {
                Owner::Local => return next.run(req).await,
                Owner::Remote(url) if !query.forwarded => {
                    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
                    let client = if query.stale_ok { &clients.hasty } else { &clients.patient };
                    forward(client, &url, &target).await
                }
                Owner::Remote(url) => Err(format!("this instance does not hold {}, which holds this key; {url} does", task())),
                Owner::Restoring => Err(format!("{}, which holds this key, is restoring its state", task())),
                Owner::Unowned => Err(format!("{}, which holds this key, is moving between instances", task())),
            };
            match answer {
                Ok(response) if response.status() != StatusCode::SERVICE_UNAVAILABLE => response,
                answer => match query.task.and_then(|t| query.routing.replica(t)).filter(|_| query.stale_ok) {
                    Some(replica) => stale(replica, next.run(req)).await,
                    None => answer.unwrap_or_else(unavailable),
                },
            }
        }
    }))
}

/// The forwarding clients: one that waits for a slow owner, and one for callers that would rather have a stale
/// answer now.
#[derive(Clone)]
struct Clients {
    patient: PeerClient,
    hasty: PeerClient,
}

/// A keyed GET, as the middleware sees it.
struct KeyedQuery<'a> {
    routing: &'a crate::routing::Routing,
    /// The task that holds the key, once the runtime knows the partitions.
    task: Option<TaskId>,
    /// Forwarded here by another instance: served here or answered 503, never forwarded again.
    forwarded: bool,
    /// The caller accepts an answer from a replica (`?stale=ok`, or [`ALLOW_STALE_HEADER`]).
    stale_ok: bool,
}

/// The keyed query `req` is, if it is one.
fn keyed<'a>(routes: &'a [KeyedRoute], req: &Request) -> Option<KeyedQuery<'a>> {
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
    let stale_ok =
        req.headers().contains_key(ALLOW_STALE_HEADER) || req.uri().query().is_some_and(|q| q.split('&').any(|pair| pair == "stale=ok"));
    Some(KeyedQuery {
        routing: &route.routing,
        task: route.routing.task_of(&key),
        forwarded: req.headers().contains_key(crate::routing::FORWARDED_HEADER),
        stale_ok,
    })
}

/// How long a caller should wait before asking again for a key nobody can answer for now.
const RETRY_AFTER_SECS: &str = "1";

/// 503 with `Retry-After`: nobody can answer for the key now, and a 404 would say it does not exist.
fn unavailable(why: String) -> Response {
    with_retry_after(ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: format!("{why}; try again shortly") }.into_response())
}

/// `response` with the `Retry-After` of an answer nobody can give now: a restore, a move, an owner that is gone.
pub(super) fn with_retry_after(mut response: Response) -> Response {
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}

/// The route's answer from `replica`'s stores, marked with how far behind they may be.
async fn stale(replica: Replica, query: impl std::future::Future<Output = Response>) -> Response {
    let behind = replica.behind_ms(crate::time::Clock::System.now_ms());
    let mut response = crate::stale::read_from(replica, query).await;
    response.headers_mut().insert(STALE_HEADER, behind.into());
    response
}

/// A path segment as the key it stands for: percent-decoded once (the request is forwarded with the segment as
/// it came, so the owner decodes it once too). `None` when it is not UTF-8: served here, where the route says 400.
fn path_key(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}

/// How long a forwarded query may take, connection included, before the caller gets a 503.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The same, for a caller that accepts a stale answer instead.
const STALE_OK_FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The owner's answer as it came (status, content type, `Retry-After`, [`STALE_HEADER`]), or why there was none.
async fn forward(client: &PeerClient, url: &str, target: &str) -> Result<Response, String> {
    let answer = client
        .get(url, target, &[(crate::routing::FORWARDED_HEADER, "1")])
        .await
        .map_err(|e| format!("the owner at {url} did not answer: {}", describe(&e)))?;
    let mut response = (answer.status, answer.body).into_response();
    for name in [axum::http::header::CONTENT_TYPE, axum::http::header::RETRY_AFTER, axum::http::HeaderName::from_static(STALE_HEADER)] {
        if let Some(value) = answer.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::StoreRegistry;
    use crate::state::memory::MemoryStore;
    use crate::state::{KeyValueStore, WriteBatch};
    use axum::extract::{Path, State};
    use axum::routing::get;
    use std::collections::BTreeSet;
    use std::future::IntoFuture;
    use std::sync::atomic::AtomicI64;
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

    /// A key of every partition of 4.
    fn key_on(partition: i32) -> String {
        (0..).map(|i| format!("k{i}")).find(|k| crate::partition::partition_for(k.as_bytes(), 4) == partition).expect("key")
    }

    /// `/things/{id}` over `route`'s stores, served on a local port.
    async fn serve(route: KeyedRoute) -> std::net::SocketAddr {
        let things = Router::new()
            .route(
                "/things/{id}",
                get(|State(stores): State<StoreRegistry>, Path(id): Path<String>| async move {
                    match stores.get("things", id.as_bytes()) {
                        Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned().into_response(),
                        _ => ApiError::not_found("no such thing").into_response(),
                    }
                }),
            )
            .with_state(route.routing.stores.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(axum::serve(listener, route_by_key(things, vec![route])).into_future());
        addr
    }

    #[tokio::test]
    async fn a_key_whose_task_is_restoring_answers_503_with_retry_after_not_404() {
        let routing = crate::routing::test_routing(&[], &[0, 1, 2, 3]);
        routing.status.thread(0).set_tasks(BTreeSet::from([TaskId::new(1, 2)]), BTreeSet::from([TaskId::new(1, 1)]));
        let addr = serve(KeyedRoute { path: "/things/{id}", param: "id", normalize: str::to_owned, routing }).await;
        let (restoring_key, running_key) = (key_on(1), key_on(2));

        let restoring = raw_get(addr, &format!("/things/{restoring_key}"), "").await;
        assert!(restoring.starts_with("http/1.1 503"), "{restoring}");
        assert!(restoring.contains("retry-after: 1\r\n") && restoring.contains("restoring its state"), "{restoring}");
        let forwarded = raw_get(addr, &format!("/things/{restoring_key}"), &format!("{}: 1\r\n", crate::routing::FORWARDED_HEADER)).await;
        assert!(forwarded.starts_with("http/1.1 503"), "a query forwarded to the owner gets the 503 too: {forwarded}");
        let running = raw_get(addr, &format!("/things/{running_key}"), "").await;
        assert!(running.starts_with("http/1.1 404"), "a running task's unknown key is a plain 404: {running}");
    }

    #[tokio::test]
    async fn a_key_nobody_can_answer_for_gets_503_or_when_allowed_a_replicas_answer_marked_stale() {
        let dead = {
            let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            format!("http://{}", gone.local_addr().expect("address"))
        };
        // 1_0 is here, 1_1 is moving (nobody claims it), 1_2's owner is dead and this instance keeps its replica.
        let routing = crate::routing::test_routing(&[(&dead, 2)], &[0]);
        let (here, moving, orphan) = (key_on(0), key_on(1), key_on(2));
        let replica = MemoryStore::new("things");
        let mut batch = WriteBatch::default();
        batch.put(orphan.clone().into_bytes(), b"as the replica has it".to_vec());
        replica.apply(&batch, None).expect("replica");
        let caught_up_at = Arc::new(AtomicI64::new(chrono::Utc::now().timestamp_millis() - 1500));
        routing.stores.register_replica(TaskId::new(1, 2), Replica { partition: 2, stores: vec![Arc::new(replica)], caught_up_at });
        let addr = serve(KeyedRoute { path: "/things/{id}", param: "id", normalize: str::to_owned, routing }).await;

        let strict = raw_get(addr, &format!("/things/{orphan}"), "").await;
        assert!(strict.starts_with("http/1.1 503") && strict.contains("retry-after: 1\r\n"), "{strict}");
        assert!(strict.contains(&format!("the owner at {dead} did not answer")), "{strict}");
        for (target, header) in
            [(format!("/things/{orphan}?stale=ok"), String::new()), (format!("/things/{orphan}"), format!("{ALLOW_STALE_HEADER}: 1\r\n"))]
        {
            let stale = raw_get(addr, &target, &header).await;
            assert!(stale.starts_with("http/1.1 200") && stale.ends_with("as the replica has it"), "{stale}");
            let behind: i64 =
                stale.split(&format!("{STALE_HEADER}: ")).nth(1).and_then(|r| r.split("\r\n").next()?.parse().ok()).expect("marked stale");
            assert!(behind >= 1500, "at least as far behind as the replica's last catch-up: {behind}");
        }
        let no_replica = raw_get(addr, &format!("/things/{moving}?stale=ok"), "").await;
        assert!(no_replica.starts_with("http/1.1 503") && no_replica.contains("moving between instances"), "{no_replica}");
        let forwarded = raw_get(addr, &format!("/things/{orphan}"), &format!("{}: 1\r\n", crate::routing::FORWARDED_HEADER)).await;
        assert!(
            forwarded.starts_with("http/1.1 503") && forwarded.contains("does not hold task 1_2"),
            "not a 404 for a task held elsewhere: {forwarded}"
        );
        let fresh = raw_get(addr, &format!("/things/{here}?stale=ok"), "").await;
        assert!(fresh.starts_with("http/1.1 404") && !fresh.contains(STALE_HEADER), "a task held here answers as itself: {fresh}");
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
