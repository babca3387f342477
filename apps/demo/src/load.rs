//! The load generators as the demo runs them: account transactions, trades, labelled card traffic, and the
//! simulated homes that obey the controller's commands. Each runs on its own thread and reports what it sent.

use std::time::Duration;

/// How much load, and how fast.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) seed: u64,
    pub(crate) transactions: u64,
    pub(crate) trades: u64,
    pub(crate) card_transactions: u64,
    pub(crate) homes: u32,
    pub(crate) device_minutes: u64,
    pub(crate) speedup: u32,
    /// Records per second per generator (`None`: as fast as possible).
    pub(crate) rate: Option<u32>,
    pub(crate) malformed: f64,
}

/// What a generator sent.
pub(crate) type Sent = anyhow::Result<String>;

pub(crate) fn transactions(bs: &str, load: &Load) -> Sent {
    let opts = loadgen::transactions::Options {
        seed: load.seed,
        count: load.transactions,
        malformed_share: load.malformed,
        high_value_share: 0.02,
        ..Default::default()
    };
    let sent = loadgen::produce::produce(bs, &[], "transactions", loadgen::transactions::generate(&opts), load.rate)?;
    Ok(format!("{sent} transactions"))
}

pub(crate) fn trades(bs: &str, load: &Load) -> Sent {
    let opts = loadgen::trades::Options {
        seed: load.seed,
        count: load.trades,
        symbols: 40,
        malformed_share: load.malformed,
        ..Default::default()
    };
    let sent = loadgen::produce::produce(bs, &[], "trades", loadgen::trades::generate(&opts), load.rate)?;
    Ok(format!("{sent} trades"))
}

pub(crate) fn cards(bs: &str, load: &Load) -> Sent {
    let opts = loadgen::cards::Options {
        seed: load.seed,
        // Frauds are injected on cards with some history: about 40 transactions per card leaves room for them.
        cards: u32::try_from(load.card_transactions / 40).unwrap_or(u32::MAX).clamp(10, 2000),
        transactions: load.card_transactions,
        fraud_rate: 0.02,
        malformed_share: load.malformed,
        // A card's normal transactions an hour or more apart, as the generator's daily limits assume.
        spacing_ms: 60_000,
        ..Default::default()
    }
    .ending_by(chrono::Utc::now());
    let events = loadgen::cards::generate(&opts).map(|e| e.outgoing(["card-transactions", "card-profiles", "merchant-blocklist"]));
    let sent = loadgen::produce::produce_all(bs, &[], events, load.rate)?;
    Ok(format!("{sent} card records"))
}

/// The simulated homes: registered, then run for `device_minutes` simulated minutes.
pub(crate) fn homes(bs: &str, load: &Load) -> Sent {
    let opts = loadgen::devices::Options { seed: load.seed, homes: load.homes, ..Default::default() };
    let mut sim = loadgen::devices::Simulation::new(&opts);
    loadgen::devices::register(bs, &[], "devices", &sim)?;
    let topics = loadgen::devices::Topics {
        telemetry: "telemetry".into(),
        commands: vec!["device-commands.thermostat".into(), "device-commands.washer".into()],
    };
    let pace = opts.step / load.speedup.max(1);
    let minutes = i64::try_from(load.device_minutes).unwrap_or(i64::MAX);
    loadgen::devices::closed_loop(bs, &[], &topics, &mut sim, pace.max(Duration::from_millis(1)), |s| {
        (s.now() - opts.start).num_minutes() < minutes
    })?;
    Ok(format!("{} homes for {minutes} simulated minutes: {}", load.homes, sim.summary()))
}
