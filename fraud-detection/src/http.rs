//! `/alerts?limit=N` and `/cards/{card_id}`, answered from local state; with `--advertised-url`, a card is
//! answered by its owner and the alerts are gathered from every instance ([`newest_alerts`] merges them).

use crate::model::{Alert, Profile};
use crate::rules::CardState;
use crate::topology::{ALERTS_STORE, CARDS_STORE, CLOSED_STORE, PROFILES_STORE};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use streamcore::http::gather::merge_sorted;
use streamcore::http::ApiError;
use streamcore::query::StoreRegistry;
use streamcore::state::Order;

/// The service's routes.
pub fn app(stores: StoreRegistry) -> Router {
    Router::new().route("/alerts", get(alerts)).route("/cards/{card_id}", get(card)).with_state(stores)
}

/// How many alerts `/alerts` lists without a `limit`.
const DEFAULT_LIMIT: usize = 20;

/// Every instance's newest alerts, merged newest first (by event time, then alert id: the order of the local
/// store's keys) and cut to the request's limit.
pub fn newest_alerts(query: &HashMap<String, String>, parts: Vec<serde_json::Value>) -> Result<serde_json::Value, String> {
    let limit = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(DEFAULT_LIMIT);
    merge_sorted(parts, |a: &Alert| (a.ts.timestamp_millis().max(0), a.alert_id.clone()), Order::Descending, limit)
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<String>,
}

async fn alerts(State(stores): State<StoreRegistry>, Query(q): Query<Limit>) -> Result<Json<Vec<Alert>>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => {
            l.parse::<usize>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| ApiError::bad_request("limit must be 1..1000"))?
        }
    };
    let newest = stores.last(ALERTS_STORE, limit)?;
    let alerts = newest.iter().map(|(_, v)| serde_json::from_slice(v)).collect::<Result<Vec<Alert>, _>>();
    alerts.map(Json).map_err(|e| ApiError::internal(format!("stored alert does not decode: {e}")))
}

/// A card as the detector sees it.
#[derive(serde::Serialize)]
struct CardView {
    card_id: String,
    profile: Option<Profile>,
    closed: bool,
    stats: Option<CardState>,
}

async fn card(State(stores): State<StoreRegistry>, Path(card_id): Path<String>) -> Result<Json<CardView>, ApiError> {
    if card_id.is_empty() || card_id.len() > 128 {
        return Err(ApiError::bad_request("card_id must be 1 to 128 characters"));
    }
    let profile: Option<Profile> = stores.get_json(PROFILES_STORE, &card_id)?;
    let stats: Option<CardState> = stores.get_json(CARDS_STORE, &card_id)?;
    let closed = stores.get(CLOSED_STORE, card_id.as_bytes())?.is_some();
    if profile.is_none() && stats.is_none() && !closed {
        return Err(ApiError::not_found(format!("no card {card_id}")));
    }
    Ok(Json(CardView { card_id, profile, closed, stats }))
}
