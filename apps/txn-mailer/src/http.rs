//! The mailer's endpoints, answered from the committed local state of this instance's tasks (interactive queries):
//! `GET /alerts/recent?limit=N` (newest first, 1..=1000, default 20) and `GET /stats`. With `--advertised-url`
//! both are gathered from every instance: [`newest_alerts`] and [`total_stats`] merge the parts.

use crate::model::{Alert, Stats};
use crate::topology::{RECENT_KEPT, RECENT_STORE, STATS_STORE};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use streamcore::http::gather::merge_sorted;
use streamcore::http::ApiError;
use streamcore::query::StoreRegistry;
use streamcore::state::Order;

/// The service's routes.
pub fn app(stores: StoreRegistry) -> Router {
    Router::new().route("/alerts/recent", get(recent)).route("/stats", get(stats)).with_state(stores)
}

/// How many alerts `/alerts/recent` lists without a `limit`.
const DEFAULT_LIMIT: usize = 20;

/// Every instance's newest alerts, merged newest first (by send time, then transaction: the local store's key
/// order) and cut to the request's limit.
pub fn newest_alerts(query: &HashMap<String, String>, parts: Vec<serde_json::Value>) -> Result<serde_json::Value, String> {
    let limit = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(DEFAULT_LIMIT);
    merge_sorted(parts, |a: &Alert| (a.notified_at.timestamp_millis(), a.txn_id.clone()), Order::Descending, limit)
}

/// Every instance's totals, added up.
pub fn total_stats(_: &HashMap<String, String>, parts: Vec<serde_json::Value>) -> Result<serde_json::Value, String> {
    let mut total = Stats::default();
    for part in parts {
        total.add(&serde_json::from_value(part).map_err(|e| e.to_string())?);
    }
    serde_json::to_value(total).map_err(|e| e.to_string())
}

async fn recent(State(stores): State<StoreRegistry>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Vec<Alert>>, ApiError> {
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
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
            total.add(&s);
        }
    }
    Ok(Json(total))
}
