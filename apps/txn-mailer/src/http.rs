//! The mailer's endpoints, answered from the committed local state of this instance's tasks (interactive queries):
//! `GET /alerts/recent?limit=N` (newest first, 1..=1000, default 20) and `GET /stats`.

use crate::model::{Alert, Stats};
use crate::topology::{RECENT_KEPT, RECENT_STORE, STATS_STORE};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use streamcore::http::ApiError;
use streamcore::query::StoreRegistry;

/// The service's routes.
pub fn app(stores: StoreRegistry) -> Router {
    Router::new().route("/alerts/recent", get(recent)).route("/stats", get(stats)).with_state(stores)
}

async fn recent(State(stores): State<StoreRegistry>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Vec<Alert>>, ApiError> {
    let limit = match q.get("limit") {
        None => 20,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=RECENT_KEPT as usize).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be an integer from 1 to {RECENT_KEPT}, got {s:?}")))?,
    };
    let entries = stores.last(RECENT_STORE, limit)?;
    let alerts = entries.into_iter().filter_map(|(_, v)| serde_json::from_slice(&v).ok()).collect();
    Ok(Json(alerts))
}

async fn stats(State(stores): State<StoreRegistry>) -> Result<Json<Stats>, ApiError> {
    let mut total = Stats::default();
    for (_, store) in stores.partitions(STATS_STORE) {
        if let Some(bytes) = store.get(b"stats")? {
            let s: Stats = serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))?;
            total.seen += s.seen;
            total.alerted += s.alerted;
            total.alerted_usd = total.alerted_usd.saturating_add(s.alerted_usd);
        }
    }
    Ok(Json(total))
}
