//! `iot-controller`: telemetry joined with a device registry becomes commands routed to devices (issue: IoT command routing).
//!
//! A skeleton for now: the crate exists so the workspace shows the whole suite; the service is built on
//! `streamcore` in its own issue.
