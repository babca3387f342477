//! The live page: one HTML file that refreshes itself every two seconds from the demo's own server, which
//! forwards `/svc/<service>/<path>` to that service's HTTP endpoint (one origin for the browser, so no CORS),
//! lists the mails in the outbox under `/api/mails`, and serves what it draws over time under `/api/history`
//! (`crate::history`). The page draws its charts and the topologies itself, as inline SVG: no library to fetch.

use crate::history;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use streamcore::http::peer::{describe, PeerClient};

const PAGE: &str = include_str!("page.html");

#[derive(Clone)]
struct Page {
    services: Arc<Vec<(&'static str, SocketAddr)>>,
    outbox: PathBuf,
    homes: u32,
    mode: String,
    client: PeerClient,
    history: history::Shared,
}

/// How long the page waits for a service's answer.
const SERVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The page's routes; `mode` says where the data lives (the mock cluster or a real broker).
pub(crate) fn routes(
    services: Vec<(&'static str, SocketAddr)>,
    outbox: PathBuf,
    homes: u32,
    mode: String,
    history: history::Shared,
) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/info", get(info))
        .route("/api/mails", get(mails))
        .route("/api/history", get(past))
        .route("/svc/{service}/{*path}", get(forward))
        .with_state(Page { services: Arc::new(services), outbox, homes, mode, client: PeerClient::new(SERVICE_TIMEOUT), history })
}

async fn past(State(p): State<Page>) -> Json<history::History> {
    Json(p.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
}

async fn info(State(p): State<Page>) -> Json<serde_json::Value> {
    let services: Vec<&str> = p.services.iter().map(|(name, _)| *name).collect();
    Json(serde_json::json!({ "homes": p.homes, "services": services, "mode": p.mode }))
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// GET `path` from `service` and answer with its status and body.
async fn forward(State(p): State<Page>, Path((service, path)): Path<(String, String)>, RawQuery(query): RawQuery) -> Response {
    let Some(&(_, addr)) = p.services.iter().find(|(name, _)| *name == service) else {
        return error(StatusCode::NOT_FOUND, format!("no service {service}"));
    };
    let target = match query {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    };
    match p.client.get(&addr.to_string(), &target, &[]).await {
        Ok(answer) => (answer.status, [(header::CONTENT_TYPE, "application/json")], answer.body).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("{service} did not answer: {}", describe(&e))),
    }
}

/// A mail in the outbox: its subject and recipient.
#[derive(serde::Serialize)]
struct Mail {
    subject: String,
    to: String,
}

async fn mails(State(p): State<Page>) -> Json<serde_json::Value> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&p.outbox)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let latest: Vec<Mail> = files
        .iter()
        .rev()
        .take(10)
        .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
        .map(|text| {
            let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().trim().to_owned();
            Mail { subject: field("Subject:"), to: field("To:") }
        })
        .collect();
    Json(serde_json::json!({ "count": files.len(), "latest": latest }))
}
