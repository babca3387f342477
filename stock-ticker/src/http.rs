//! The contract's endpoints, answered from local state (interactive queries): the daily statistics table and
//! the moving windows of sub-topology 1, the lists of sub-topology 2. Every error is JSON with a 4xx status.

use crate::model::{DailyStats, MovingAggregate, MovingStats, Top10};
use crate::ranking::TOP10_STORE;
use crate::topology::{daily_key, DAILY_STATS_STORE, MOVING_WINDOWS};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use std::ops::Bound;
use streamcore::http::ApiError;
use streamcore::query::StoreRegistry;
use streamcore::state::Order;

/// The service's routes over its stores.
pub fn app(stores: StoreRegistry) -> Router {
    Router::new()
        .route("/stocks/{symbol}", get(latest_day))
        .route("/stocks/{symbol}/days/{date}", get(day))
        .route("/stocks/{symbol}/moving", get(moving))
        .route("/top10", get(latest_top10))
        .route("/top10/{date}", get(top10))
        .with_state(stores)
}

fn symbol(raw: &str) -> Result<String, ApiError> {
    let s = raw.to_ascii_uppercase();
    let ok = !s.is_empty() && s.len() <= 16 && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if ok {
        Ok(s)
    } else {
        Err(ApiError::bad_request(format!("{raw:?} is not a symbol (1-16 of A-Z, 0-9, '.', '-')")))
    }
}

fn date(raw: &str) -> Result<NaiveDate, ApiError> {
    raw.parse().map_err(|_| ApiError::bad_request(format!("{raw:?} is not a date (YYYY-MM-DD)")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::internal(format!("stored value does not decode: {e}")))
}

async fn latest_day(State(s): State<StoreRegistry>, Path(raw): Path<String>) -> Result<Json<DailyStats>, ApiError> {
    let symbol = symbol(&raw)?;
    // Keys `<symbol>/<date>` sort by date within a symbol; '0' is the byte after '/'.
    let (from, to) = (format!("{symbol}/").into_bytes(), format!("{symbol}0").into_bytes());
    let latest = s.range(DAILY_STATS_STORE, Bound::Included(from), Bound::Excluded(to), Order::Descending, 1)?;
    let (_, bytes) = latest.first().ok_or_else(|| ApiError::not_found(format!("no trades of {symbol} yet")))?;
    Ok(Json(decode(bytes)?))
}

async fn day(State(s): State<StoreRegistry>, Path((raw, raw_date)): Path<(String, String)>) -> Result<Json<DailyStats>, ApiError> {
    let (symbol, date) = (symbol(&raw)?, date(&raw_date)?);
    let stats = s.get_json(DAILY_STATS_STORE, &daily_key(&symbol, date))?;
    stats.map(Json).ok_or_else(|| ApiError::not_found(format!("no trades of {symbol} on {date}")))
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<String>,
}

async fn moving(
    State(s): State<StoreRegistry>,
    Path(raw): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<MovingStats>>, ApiError> {
    let symbol = symbol(&raw)?;
    let limit = match q.limit.as_deref() {
        None => 5,
        Some(l) => {
            l.parse::<usize>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| ApiError::bad_request("limit must be 1..1000"))?
        }
    };
    let windows = streamcore::window::store::fetch::<MovingAggregate>(&s, MOVING_WINDOWS, &symbol)?;
    if windows.is_empty() {
        return Err(ApiError::not_found(format!("no open moving windows of {symbol}")));
    }
    let skip = windows.len().saturating_sub(limit);
    Ok(Json(windows.iter().skip(skip).map(|w| MovingStats::of(&w.key, &w.window, &w.value)).collect()))
}

async fn latest_top10(State(s): State<StoreRegistry>) -> Result<Json<Top10>, ApiError> {
    let latest = s.last(TOP10_STORE, 1)?;
    let (_, bytes) = latest.first().ok_or_else(|| ApiError::not_found("no trading day yet"))?;
    Ok(Json(decode(bytes)?))
}

async fn top10(State(s): State<StoreRegistry>, Path(raw_date): Path<String>) -> Result<Json<Top10>, ApiError> {
    let date = date(&raw_date)?;
    let top = s.get_json(TOP10_STORE, &date.to_string())?;
    top.map(Json).ok_or_else(|| ApiError::not_found(format!("no top-10 for {date}")))
}
