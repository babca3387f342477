//! Seeded, reproducible load for the suite's input topics. The same seed always gives the same records, so
//! tests, the demo and the benchmarks can share data and a failure can be replayed.
//!
//! # Layout
//! | module | what |
//! |---|---|
//! | [`transactions`] | account transactions for `txn-mailer`, with a share of high-value and malformed ones |
//! | [`devices`] | homes for `iot-controller`: a registry, telemetry, and a simulator that obeys the commands |
//! | [`cards`] | labelled card traffic for `fraud-detection`: habits, injected frauds, the ground truth beside it |
//! | [`trades`] | trades for `stock-ticker`: random walks in trading hours, out-of-order, late, unkeyed and malformed shares |
//! | [`produce`] | writing generated records to Kafka at a rate |

pub mod cards;
pub mod devices;
pub mod produce;
pub mod trades;
pub mod transactions;

/// A generated record: key, value bytes, and what the generator meant it to be (ground truth for tests; never
/// part of the record itself).
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Record key.
    pub key: Option<String>,
    /// Record value.
    pub value: Vec<u8>,
    /// `Some(kind)` when the record is deliberately bad.
    pub malformed: Option<&'static str>,
}
