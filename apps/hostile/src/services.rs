//! The four services as the suite runs them: in process, each topology on the streamcore runtime against the real
//! broker (the same code the binaries run, minus HTTP), with the topics of one run under a prefix of its own. For
//! each, its input topics (as [`Target`]s), a stream of good records, and how to count their outputs.

use crate::cases::{Expect, Target};
use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use streamcore::query::StoreRegistry;
use streamcore::testkit::kafka::read_to_end;
use streamcore::{StreamsConfig, TopicNames, Topology};

/// One service, ready to run.
pub struct Service {
    /// Its name (and dead-letter prefix).
    pub name: &'static str,
    /// Its topology.
    pub topology: Topology,
    /// Its input topics, each with the good records to send and the target to attack it with.
    pub inputs: Vec<Input>,
    /// Counts the outputs of the good records, once the service caught up.
    pub outputs: CountOutputs,
    /// Records the good ones depend on (the blocked merchant, a global table read whole before processing starts),
    /// sent to compacted topics before the service starts: (topic, key, value).
    pub setup: Vec<(String, String, Value)>,
    /// Keeps the mailer's outbox alive while it runs.
    pub outbox: Option<tempfile::TempDir>,
}

/// How a service's outputs are counted.
pub type CountOutputs = Box<dyn Fn(&Context) -> anyhow::Result<usize>>;

/// An input topic: its full name, what to attack it with, and good records (key, value).
pub struct Input {
    /// The topic.
    pub topic: String,
    /// How to make bad records for it.
    pub target: Target,
    /// Good records, each of which must have an output (records a good record only depends on, like the
    /// blocklist entry, are sent but not counted).
    pub good: Vec<(String, Value)>,
    /// Whether its good records are counted as outputs (false: they set up state the counted ones need).
    pub counted: bool,
}

/// What an output check can look at.
pub struct Context<'a> {
    /// The broker.
    pub bootstrap: &'a str,
    /// The run's topic prefix.
    pub prefix: &'a str,
    /// The running service's stores.
    pub stores: &'a StoreRegistry,
}

fn ts(ago: Duration) -> String {
    (Utc::now() - ago).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The configuration every service runs with here.
pub fn config(name: &str, bootstrap: &str, prefix: &str, state: &std::path::Path) -> StreamsConfig {
    let mut c = StreamsConfig::new(name, bootstrap);
    c.topics = TopicNames::prefixed(prefix);
    c.state_dir = state.join(name);
    c.commit_interval = std::time::Duration::from_millis(200);
    c
}

fn read(ctx: &Context, topic: &str) -> anyhow::Result<Vec<Value>> {
    let records = read_to_end(ctx.bootstrap, &format!("{}{topic}", ctx.prefix), std::time::Duration::from_secs(60))?;
    Ok(records.iter().map(|r| r.json()).collect())
}

/// The mailer: transactions of 20,000 USD, each an email and an audit record.
pub fn mailer(prefix: &str, app: &str, good: usize) -> anyhow::Result<Service> {
    let outbox = tempfile::tempdir()?;
    let settings = txn_mailer::topology::Settings {
        application_id: app.to_owned(),
        input_topic: format!("{prefix}transactions"),
        alerts_topic: format!("{prefix}high-value-alerts"),
        threshold: "10000.00 USD".parse().map_err(anyhow::Error::msg)?,
        fx: "EUR=1.08".parse().map_err(anyhow::Error::msg)?,
        default_rep: None,
    };
    let mailer = txn_mailer::mailer::Mailer::outbox(outbox.path(), "txn-mailer@example.com")?;
    let topology = txn_mailer::topology::build_topology(&settings, Arc::new(mailer))?;
    let txn = |i: usize| {
        json!({"txn_id": format!("g-{i}"), "account_id": format!("acc-{}", i % 7), "amount": "20000.00", "currency": "USD",
               "merchant": "Acme", "sales_rep": "kim@example.com", "ts": ts(Duration::minutes(30))})
    };
    let target = Target {
        key: "acc-1".into(),
        good: txn(usize::MAX),
        decimal_field: Some("amount"),
        ts_field: Some("ts"),
        required_field: "txn_id",
        table: false,
        far_past: Expect::Output,
        keyless: Expect::Output,
        id_field: Some("txn_id"),
    };
    let good = (0..good).map(|i| (format!("acc-{}", i % 7), txn(i))).collect();
    let inputs = vec![Input { topic: format!("{prefix}transactions"), target, good, counted: true }];
    let outputs = Box::new(|ctx: &Context| Ok(read(ctx, "high-value-alerts")?.len()));
    Ok(Service { name: "txn-mailer", topology, inputs, outputs, setup: Vec::new(), outbox: Some(outbox) })
}

/// The stock ticker: trades of today, each one update of its symbol's daily statistics.
pub fn ticker(prefix: &str, app: &str, good: usize) -> anyhow::Result<Service> {
    let mut s = stock_ticker::topology::Settings::new(app);
    s.topics = TopicNames::prefixed(prefix);
    let topology = stock_ticker::topology::topology(&s)?;
    let trade = |i: usize| {
        json!({"symbol": format!("S{}", i % 5), "price": format!("100.{i}"), "volume": 1,
               "ts": ts(Duration::minutes(10) - Duration::milliseconds(i as i64))})
    };
    let target = Target {
        key: "S1".into(),
        good: trade(1),
        decimal_field: Some("price"),
        ts_field: Some("ts"),
        required_field: "symbol",
        table: false,
        far_past: Expect::Late,
        keyless: Expect::Output,
        id_field: None,
    };
    let good = (0..good).map(|i| (format!("S{}", i % 5), trade(i))).collect();
    let inputs = vec![Input { topic: format!("{prefix}trades"), target, good, counted: true }];
    let outputs = Box::new(|ctx: &Context| Ok(read(ctx, "stock-daily-stats")?.len()));
    Ok(Service { name: "stock-ticker", topology, inputs, outputs, setup: Vec::new(), outbox: None })
}

/// The fraud detector: card profiles, one blocked merchant, and transactions there an hour apart (so no other
/// rule fires), each one alert naming it.
pub fn fraud(prefix: &str, app: &str, good: usize) -> anyhow::Result<Service> {
    let settings = fraud_detection::topology::Settings {
        application_id: app.to_owned(),
        topics: TopicNames::prefixed(prefix),
        thresholds: fraud_detection::rules::Thresholds::default(),
        fx: "EUR=1.10".parse().map_err(anyhow::Error::msg)?,
        without_profile: prometheus::IntCounter::new("hostile_without_profile", "unused")?,
    };
    let topology = fraud_detection::topology::build_topology(&settings)?;
    let profile = |card: usize| json!({"card_id": format!("c{card}"), "customer_id": format!("u{card}"), "home_country": "US", "daily_limit": "1000000000"});
    let txn = |i: usize| {
        json!({"txn_id": format!("g-{i}"), "card_id": format!("c{}", i % 5), "amount": "42.10", "currency": "USD",
               "merchant": "EvilCo", "country": "US", "lat": 40.71, "lon": -74.0, "ts": ts(Duration::hours(i as i64 + 1))})
    };
    let profiles = Target {
        key: "c1".into(),
        good: profile(1),
        decimal_field: Some("daily_limit"),
        ts_field: None,
        required_field: "customer_id",
        table: true,
        far_past: Expect::Output,
        keyless: Expect::Output,
        id_field: None,
    };
    let txns = Target {
        key: "c4".into(),
        good: txn(9999),
        decimal_field: Some("amount"),
        ts_field: Some("ts"),
        required_field: "card_id",
        table: false,
        far_past: Expect::Output,
        keyless: Expect::Output,
        id_field: Some("txn_id"),
    };
    let inputs = vec![
        Input {
            topic: format!("{prefix}card-profiles"),
            target: profiles,
            good: (0..5).map(|c| (format!("c{c}"), profile(c))).collect(),
            counted: false,
        },
        Input {
            topic: format!("{prefix}card-transactions"),
            target: txns,
            good: (0..good).map(|i| (format!("c{}", i % 5), txn(i))).collect(),
            counted: true,
        },
    ];
    let outputs = Box::new(|ctx: &Context| {
        let alerts = read(ctx, "fraud-alerts")?;
        let ids: std::collections::BTreeSet<&str> = alerts.iter().filter_map(|a| a["txn_id"].as_str()).collect();
        Ok(ids.len())
    });
    let setup = vec![(format!("{prefix}merchant-blocklist"), "EvilCo".to_owned(), json!({"reason": "chargebacks"}))];
    Ok(Service { name: "fraud-detection", topology, inputs, outputs, setup, outbox: None })
}

/// The IoT controller: registered thermostats, each with one reading, which becomes its latest state.
pub fn iot(prefix: &str, app: &str, good: usize) -> anyhow::Result<Service> {
    let mut s = iot_controller::topology::Settings::new(app, prometheus::IntCounter::new("hostile_unknown", "unused")?);
    s.topics = TopicNames::prefixed(prefix);
    let topology = iot_controller::topology::build_topology(&s)?;
    let device =
        |i: usize| json!({"device_id": format!("t-{i}"), "home_id": "h-1", "kind": "thermostat", "target_c": "21.0", "band_c": "1.0"});
    let reading = |i: usize| json!({"device_id": format!("t-{i}"), "ts": ts(Duration::minutes(2)), "temperature_c": "21.0"});
    let devices = Target {
        key: "t-1".into(),
        good: device(1),
        decimal_field: Some("target_c"),
        ts_field: None,
        required_field: "kind",
        table: true,
        far_past: Expect::Output,
        keyless: Expect::Output,
        id_field: None,
    };
    let telemetry = Target {
        key: "t-1".into(),
        good: reading(1),
        decimal_field: Some("temperature_c"),
        ts_field: Some("ts"),
        required_field: "device_id",
        table: false,
        far_past: Expect::Late,
        keyless: Expect::Processed,
        id_field: None,
    };
    let inputs = vec![
        Input {
            topic: format!("{prefix}devices"),
            target: devices,
            good: (0..good).map(|i| (format!("t-{i}"), device(i))).collect(),
            counted: false,
        },
        Input {
            topic: format!("{prefix}telemetry"),
            target: telemetry,
            good: (0..good).map(|i| (format!("t-{i}"), reading(i))).collect(),
            counted: true,
        },
    ];
    let outputs = Box::new(move |ctx: &Context| {
        let mut n = 0;
        for i in 0..good {
            let state: Option<iot_controller::control::DeviceState> =
                ctx.stores.get_json(iot_controller::topology::STATE_STORE, &format!("t-{i}")).ok().flatten();
            n += usize::from(state.is_some_and(|s| s.latest.is_some()));
        }
        Ok(n)
    });
    Ok(Service { name: "iot-controller", topology, inputs, outputs, setup: Vec::new(), outbox: None })
}
