//! A list answered from every instance (scatter-gather): an instance holds only its own tasks' part of a list
//! such as the newest alerts or a home's devices, so the instance a query reaches asks every other owner of the
//! list's sub-topology for its part, at once, and merges the parts in the order the contract gives the list.
//!
//! - The request is run here too, and the parts are asked with [`FORWARDED_HEADER`]: an owner answers with its
//!   own part only, and never asks further.
//! - Each owner gets [`GATHER_TIMEOUT`]. An owner that does not answer in time, a task restoring its state, or a
//!   task nobody owns (in the middle of a rebalance) makes the answer *partial*: still 200 with what was found,
//!   and the header [`PARTIAL_HEADER`] saying what is missing. A part found nowhere while some are missing is a
//!   503 with `Retry-After`, never a 404 that may be wrong.
//! - A part's 404 is an empty part ("none of these here"); the answer is 404 only when every part is.
//! - The local answer's other errors (a malformed parameter's 400) are answered as they are, asking nobody.

use super::keyed::with_retry_after;
use super::peer::{describe, PeerClient};
use super::ApiError;
use crate::routing::{Routing, FORWARDED_HEADER};
use crate::state::Order;
use axum::extract::{MatchedPath, Query, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long each other owner has for its part.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// Set on a list answer that lacks some parts: `; `-separated reasons (`task 0_2 is restoring`, `http://b:8080
/// did not answer: ...`).
pub const PARTIAL_HEADER: &str = "x-streamsuite-partial";

/// The largest local answer read back to merge.
const MAX_PART_BYTES: usize = 16 << 20;

/// How a list's parts become one answer: the request's query parameters, and every part that was found (each a
/// 200's JSON body), this instance's first; an error says which part did not decode.
pub type Merge = fn(&HashMap<String, String>, Vec<Value>) -> Result<Value, String>;

/// A list route whose parts live on every owner of one sub-topology's tasks.
#[derive(Clone)]
pub struct GatheredRoute {
    /// The route as registered, e.g. `/homes/{home_id}/devices`.
    pub path: &'static str,
    /// Merges the parts.
    pub merge: Merge,
    /// Who owns the tasks whose stores the route reads.
    pub routing: Routing,
}

/// Answer GET requests on `routes` from every owner, as the module docs say.
pub fn gather_lists(router: Router, routes: Vec<GatheredRoute>) -> Router {
    let routes = Arc::new(routes);
    let client = PeerClient::new(GATHER_TIMEOUT);
    router.route_layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let (routes, client) = (routes.clone(), client.clone());
        async move {
            let route = req.extensions().get::<MatchedPath>().and_then(|m| routes.iter().find(|r| r.path == m.as_str())).cloned();
            match route {
                Some(route) if req.method() == axum::http::Method::GET => {
                    if req.headers().contains_key(FORWARDED_HEADER) {
                        let missing = route.routing.restoring_here();
                        mark_partial(next.run(req).await, &missing)
                    } else {
                        gather(&client, &route, req, next).await
                    }
                }
                _ => next.run(req).await,
            }
        }
    }))
}

/// A part: found (a JSON body), absent (404), or missing with a reason.
enum Part {
    Found(Value),
    Absent,
    Missing(String),
}

async fn gather(client: &PeerClient, route: &GatheredRoute, req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let query = Query::<HashMap<String, String>>::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default();
    let owners = route.routing.owners();
    let mut asks = tokio::task::JoinSet::new();
    for url in owners.remote {
        let (client, target) = (client.clone(), target.clone());
        asks.spawn(async move {
            match client.get(&url, &target, &[(FORWARDED_HEADER, "1")]).await {
                Ok(answer) => {
                    let partial = answer.headers.get(PARTIAL_HEADER).and_then(|v| v.to_str().ok()).map(|v| format!("{url}: {v}"));
                    (part(answer.status, &answer.body, &url), partial)
                }
                Err(e) => (Part::Missing(format!("{url} did not answer: {}", describe(&e))), None),
            }
        });
    }
    let local = next.run(req).await;
    let (status, headers) = (local.status(), local.headers().clone());
    let body = match axum::body::to_bytes(local.into_body(), MAX_PART_BYTES).await {
        Ok(body) => body,
        Err(e) => return ApiError::internal(format!("reading this instance's part: {e}")).into_response(),
    };
    if status != StatusCode::OK && status != StatusCode::NOT_FOUND {
        // A bad parameter, or a failure here: the same request would fail everywhere, so that is the answer.
        let mut answer = (status, body).into_response();
        answer.headers_mut().extend(headers);
        return answer;
    }
    let mut parts = vec![part(status, &body, "this instance")];
    let mut missing = owners.missing;
    while let Some(joined) = asks.join_next().await {
        match joined {
            Ok((part, partial)) => {
                parts.push(part);
                missing.extend(partial);
            }
            Err(e) => missing.push(format!("asking an owner failed: {e}")),
        }
    }
    let mut found = Vec::new();
    for p in parts {
        match p {
            Part::Found(v) => found.push(v),
            Part::Absent => {}
            Part::Missing(reason) => missing.push(reason),
        }
    }
    if found.is_empty() {
        if missing.is_empty() {
            let mut answer = (StatusCode::NOT_FOUND, body).into_response();
            answer.headers_mut().extend(headers);
            return answer;
        }
        let message = format!("no part of this list could be read yet: {}", missing.join("; "));
        let answer = (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": message })));
        return with_retry_after(answer.into_response());
    }
    match (route.merge)(&query, found) {
        Ok(merged) => mark_partial(Json(merged).into_response(), &missing),
        Err(e) => ApiError { status: StatusCode::BAD_GATEWAY, message: format!("merging the parts: {e}") }.into_response(),
    }
}

/// The items of every part (each a JSON array of `T`, sorted by `key` in `order`), merged in that order, the
/// first `limit` of them: the merge of lists such as "the newest alerts" whose every part is sorted alike.
pub fn merge_sorted<T, K>(parts: Vec<Value>, key: impl Fn(&T) -> K, order: Order, limit: usize) -> Result<Value, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
    K: Ord,
{
    let mut items = Vec::new();
    for part in parts {
        items.extend(serde_json::from_value::<Vec<T>>(part).map_err(|e| e.to_string())?);
    }
    match order {
        Order::Ascending => items.sort_by_key(|i| key(i)),
        Order::Descending => items.sort_by_key(|i| std::cmp::Reverse(key(i))),
    }
    items.truncate(limit);
    serde_json::to_value(items).map_err(|e| e.to_string())
}

/// One owner's answer as a part: a 200's JSON body, a 404, or what else it was.
fn part(status: StatusCode, body: &[u8], from: &str) -> Part {
    match status {
        StatusCode::OK => match serde_json::from_slice(body) {
            Ok(v) => Part::Found(v),
            Err(e) => Part::Missing(format!("{from} answered what is not JSON: {e}")),
        },
        StatusCode::NOT_FOUND => Part::Absent,
        other => Part::Missing(format!("{from} answered {other}: {}", String::from_utf8_lossy(body))),
    }
}

/// `response`, with [`PARTIAL_HEADER`] when something is `missing`.
fn mark_partial(mut response: Response, missing: &[String]) -> Response {
    if !missing.is_empty() {
        // Reasons are ours (task names, URLs, error texts); anything a header cannot carry becomes '?'.
        let text: String = missing.join("; ").chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().insert(PARTIAL_HEADER, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::future::IntoFuture;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(axum::serve(listener, router).into_future());
        url
    }

    fn ascending(_: &HashMap<String, String>, parts: Vec<Value>) -> Result<Value, String> {
        merge_sorted(parts, |n: &i64| *n, Order::Ascending, 10)
    }

    /// This instance owns task 1_0, a live peer 1_1, a dead one 1_2; nobody owns 1_3.
    fn routing(peer: &str, dead: &str) -> Routing {
        crate::routing::test_routing(&[(peer, 1), (dead, 2)], &[0])
    }

    #[tokio::test]
    async fn a_list_merges_every_owners_part_and_says_what_is_missing() {
        let peer = serve(Router::new().route("/things", get(|| async { Json(serde_json::json!([3, 1])) }))).await;
        let dead = {
            let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            format!("http://{}", gone.local_addr().expect("address"))
        };
        let things = Router::new()
            .route("/things", get(|| async { Json(serde_json::json!([2, 4])) }))
            .route("/none", get(|| async { ApiError::not_found("none here") }))
            .route("/bad", get(|| async { ApiError::bad_request("limit must be 1..1000") }));
        let routes = ["/things", "/none", "/bad"].map(|path| GatheredRoute { path, merge: ascending, routing: routing(&peer, &dead) });
        let here = serve(gather_lists(things, routes.to_vec())).await;
        let client = PeerClient::new(Duration::from_secs(10));

        let answer = client.get(&here, "/things", &[]).await.expect("an answer");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(serde_json::from_slice::<Value>(&answer.body).expect("JSON"), serde_json::json!([1, 2, 3, 4]));
        let partial = answer.headers.get(PARTIAL_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(partial.contains("task 1_3 has no owner") && partial.contains(&format!("{dead} did not answer")), "{partial}");

        let asked = client.get(&here, "/things", &[(FORWARDED_HEADER, "1")]).await.expect("an answer");
        assert_eq!(serde_json::from_slice::<Value>(&asked.body).expect("JSON"), serde_json::json!([2, 4]), "an owner answers its own part");

        let none = client.get(&here, "/none", &[]).await.expect("an answer");
        assert_eq!(none.status, StatusCode::SERVICE_UNAVAILABLE, "found nowhere while parts are missing: not a 404 that may be wrong");
        assert!(none.headers.contains_key(axum::http::header::RETRY_AFTER));
        let bad = client.get(&here, "/bad", &[]).await.expect("an answer");
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "a bad parameter is answered as it is");
    }
}
