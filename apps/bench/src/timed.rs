//! Timing one runtime over pre-loaded input that it repartitions once (the fraud detector, the IoT controller):
//! from the first record consumed until every input record has been consumed from the input and again from the
//! repartition topic.

use crate::stock_ticker::counter;
use anyhow::Context;
use std::time::Instant;
use streamcore::state::budget::MemoryBudget;
use streamcore::{Runtime, StreamsConfig, Topology};

/// Seconds `topology` (application id `app`) takes over `n` records of `input`, repartitioned through
/// `repartition`; its state lives in a temporary directory, removed afterwards.
pub(crate) fn through_repartition(
    bs: &str,
    topology: Topology,
    input: &str,
    repartition: &str,
    n: u64,
    state_memory: MemoryBudget,
) -> anyhow::Result<f64> {
    let app = topology.name().to_owned();
    let mut cfg = StreamsConfig::new(&app, bs);
    let state = std::env::temp_dir().join(&app);
    cfg.state_dir = state.clone();
    cfg.state_memory = state_memory;
    let registry = prometheus::Registry::new();
    let runtime = Runtime::new(topology, cfg, &registry)?;
    let stop = runtime.shutdown_handle();
    let thread = runtime.spawn()?;
    let consumed = |topic: &str| counter(&registry, "streamcore_records_consumed_total", topic);
    let mut first = None;
    while consumed(input) < n as f64 || consumed(repartition) < n as f64 {
        if first.is_none() && consumed(input) > 0.0 {
            first = Some(Instant::now());
        }
        anyhow::ensure!(!thread.is_finished(), "the stream thread stopped early");
        std::thread::sleep(crate::WATCH_INTERVAL);
    }
    stop.trigger();
    thread.join().map_err(|_| anyhow::anyhow!("stream thread panicked"))?.context("runtime")?;
    let _ = std::fs::remove_dir_all(state);
    Ok(first.map_or(0.0, |f| f.elapsed().as_secs_f64()))
}
