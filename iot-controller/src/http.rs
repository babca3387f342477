//! The read endpoints, answered from local state: `GET /devices/{device_id}` and `GET /homes/{home_id}/devices`;
//! with `--advertised-url`, a device is answered by its owner and a home's devices are gathered from every
//! instance ([`home_devices`] merges them).

use crate::api::ManualCommands;
use crate::control::{Average, DeviceState};
use crate::model::{Action, Command, Device, Reading};
use crate::topology::{home_prefix, DEVICES_STORE, HOME_INDEX_STORE, STATE_STORE};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashMap;
use std::ops::Bound;
use streamcore::http::ApiError;
use streamcore::query::StoreRegistry;
use streamcore::state::Order;

/// The most devices `/homes/{home_id}/devices` lists.
const HOME_LIMIT: usize = 1000;

/// The read routes.
pub fn routes(stores: StoreRegistry, manual: ManualCommands) -> Router {
    Router::new()
        .route("/devices/{device_id}", get(device))
        .route("/homes/{home_id}/devices", get(home))
        .with_state(Reads { stores, manual })
}

#[derive(Clone)]
struct Reads {
    stores: StoreRegistry,
    manual: ManualCommands,
}

/// A device as the controller sees it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DeviceView {
    /// The id.
    pub device_id: String,
    /// Its registry entry (`null` once removed).
    pub device: Option<Device>,
    /// Its newest reading by event time.
    pub latest_reading: Option<Reading>,
    /// A thermostat's latest complete 5-minute average.
    pub average_5m: Option<Average>,
    /// A thermostat's mode as the controller last set it.
    pub mode: Option<Action>,
    /// The last command the controller issued, or this instance's API accepted, whichever is newer.
    pub last_command: Option<Command>,
}

/// An id from a path: 1 to 128 characters.
pub(crate) fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 128 || id.contains('\0') {
        return Err(ApiError::bad_request(format!("{what} must be 1 to 128 characters")));
    }
    Ok(())
}

/// The view of `device_id`, or `None` when neither the registry nor the state knows it.
fn view(r: &Reads, device_id: &str) -> Result<Option<DeviceView>, ApiError> {
    let device: Option<Device> = r.stores.get_json(DEVICES_STORE, device_id)?;
    let state: Option<DeviceState> = r.stores.get_json(STATE_STORE, device_id)?;
    if device.is_none() && state.is_none() {
        return Ok(None);
    }
    let s = state.unwrap_or_default();
    let last_command = match (s.last_command, r.manual.get(device_id)) {
        (Some(auto), Some(manual)) => Some(if manual.issued_at > auto.issued_at { manual } else { auto }),
        (auto, manual) => auto.or(manual),
    };
    Ok(Some(DeviceView {
        device_id: device_id.to_owned(),
        device,
        latest_reading: s.latest,
        average_5m: s.average,
        mode: s.mode,
        last_command,
    }))
}

async fn device(State(r): State<Reads>, Path(device_id): Path<String>) -> Result<Json<DeviceView>, ApiError> {
    check_id("device_id", &device_id)?;
    view(&r, &device_id)?.map(Json).ok_or_else(|| ApiError::not_found(format!("no device {device_id}")))
}

/// A home and its registered devices.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct HomeView {
    /// The id.
    pub home_id: String,
    /// Its devices, by id.
    pub devices: Vec<DeviceView>,
}

/// Every instance's part of a home, its devices merged by id and cut to the 1,000 a home lists.
pub fn home_devices(_: &HashMap<String, String>, parts: Vec<serde_json::Value>) -> Result<serde_json::Value, String> {
    let mut views = Vec::with_capacity(parts.len());
    for part in parts {
        views.push(serde_json::from_value::<HomeView>(part).map_err(|e| e.to_string())?);
    }
    let home_id = views.first().map(|v| v.home_id.clone()).unwrap_or_default();
    let mut devices: Vec<DeviceView> = views.into_iter().flat_map(|v| v.devices).collect();
    devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    devices.truncate(HOME_LIMIT);
    serde_json::to_value(HomeView { home_id, devices }).map_err(|e| e.to_string())
}

async fn home(State(r): State<Reads>, Path(home_id): Path<String>) -> Result<Json<HomeView>, ApiError> {
    check_id("home_id", &home_id)?;
    let prefix = home_prefix(&home_id);
    let mut end = prefix.clone();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    let entries = r.stores.range(HOME_INDEX_STORE, Bound::Included(prefix.clone()), Bound::Excluded(end), Order::Ascending, HOME_LIMIT)?;
    let mut devices = Vec::with_capacity(entries.len());
    for (k, _) in entries {
        let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        devices.extend(view(&r, &id)?);
    }
    if devices.is_empty() {
        return Err(ApiError::not_found(format!("no devices in home {home_id}")));
    }
    Ok(Json(HomeView { home_id, devices }))
}
