//! `stock-ticker`: daily min/max per symbol in the exchange's time zone, and a two-stage top-10 (issue: windows, repartitioning and the stock ticker).
//!
//! A skeleton for now: the crate exists so the workspace shows the whole suite; the service is built on
//! `streamcore` in its own issue.
