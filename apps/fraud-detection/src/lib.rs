//! `fraud-detection`: anomaly rules over card transactions joined with card profiles (issue: tables and the stream-table join).
//!
//! A skeleton for now: the crate exists so the workspace shows the whole suite; the service is built on
//! `streamcore` in its own issue.
