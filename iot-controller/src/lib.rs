//! `iot-controller`: telemetry joined with a device registry becomes commands routed to devices: the chapter's
//! stream-table join, hopping windows, and routing by content.
//!
//! | module | concept |
//! |---|---|
//! | [`model`] | the contract's events: readings, registry entries, commands |
//! | [`control`] | the control rules as pure functions of a device's state (desired mode, once-a-day reorder) |
//! | [`topology`] | the registry as a table, the repartitioned join, windows of temperature, commands routed by kind |
//! | [`http`] | `/devices/{device_id}`, `/homes/{home_id}/devices` |
//! | [`api`] | `POST /devices/{device_id}/commands`: bearer token, validation, 202 once the broker has the command |
//! | [`config`] / [`app`] | the command line, the wiring |

pub mod api;
pub mod app;
pub mod config;
pub mod control;
pub mod http;
pub mod model;
pub mod topology;
