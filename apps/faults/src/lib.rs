//! The fault-injection suite, in the spirit of Kafka's own streams exactly-once and broker-bounce system tests.
//!
//! A driver writes keyed trades with known content at a steady rate into two instances of the real `stock-ticker`
//! binary; while it runs, a fault is injected ([`scenario::Scenario`]); once everything is processed, a verifier
//! reads the committed outputs (`read_committed`) and holds them against an oracle computed from the input.
//!
//! | module | what it holds |
//! |---|---|
//! | [`workload`] | the trades, the 0.1% malformed and 0.1% late ones mixed in, and the oracle |
//! | [`cluster`] | the instances (processes, state directories) and the broker (`scripts/kafka`) |
//! | [`progress`] | recovery time: until every output partition has new committed output after a fault |
//! | [`scenario`] | one run: drive, inject, wait, verify, measure |
//! | [`verify`] | missing and duplicated outputs, aggregates, dead and late records |
//! | [`report`] | the table, and each row's pass or fail |

pub mod cluster;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod verify;
pub mod workload;

/// The `stock-ticker` binary next to the running executable (a test binary lives one level deeper, in `deps/`).
pub fn ticker_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("stock-ticker")
}
