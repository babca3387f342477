//! The IoT controller (validate, repartition by device, join with the registry table, hopping windows of
//! temperature, thermostat and washer control, commands routed by kind) on pre-loaded telemetry with every
//! device registered, beside the plain loop (decode, validate, encode, produce).

use crate::memory::beside_plain_loop;
use crate::plain_loop;
use iot_controller::model::Reading;
use iot_controller::topology::{build_topology, Settings, BY_DEVICE, DEVICES_TOPIC, TELEMETRY_TOPIC};
use loadgen::produce::Outgoing;
use std::time::{Duration, Instant};
use streamcore::testkit::kafka::{create_topic, unique};

/// What the plain loop does to each reading: the same validation the controller applies first.
fn validated(r: Reading) -> Option<Reading> {
    r.problem().is_none().then_some(r)
}

pub(crate) fn run(bs: &str, n: u64, partitions: i32, devices: u32) -> anyhow::Result<()> {
    let prefix = format!("{}.", unique("bench"));
    let (telemetry, registry) = (format!("{prefix}{TELEMETRY_TOPIC}"), format!("{prefix}{DEVICES_TOPIC}"));
    create_topic(bs, &telemetry, partitions, false);
    create_topic(bs, &registry, partitions, true);
    let homes = (devices / 2).max(1);
    let step = Duration::from_secs(30);
    let rounds = n.div_ceil(u64::from(homes) * 2);
    let start = chrono::Utc::now() - chrono::Duration::from_std(step * u32::try_from(rounds)?)?;
    let opts = loadgen::devices::Options { seed: 1, homes, step, start, ..Default::default() };
    let (entries, readings) = loadgen::devices::preload(&opts, n);
    let outgoing = |topic: &str| {
        let topic = topic.to_owned();
        move |(key, value): loadgen::devices::Keyed| Outgoing { topic: topic.clone(), key: Some(key), value: Some(value), timestamp: None }
    };
    let started = Instant::now();
    let records = entries.into_iter().map(outgoing(&registry)).chain(readings.map(outgoing(&telemetry)));
    loadgen::produce::produce_all(bs, &[], records, None)?;
    println!(
        "pre-loaded {} devices and {n} readings over {rounds} rounds ({partitions} partitions) in {:.1}s",
        homes * 2,
        started.elapsed().as_secs_f64()
    );

    beside_plain_loop("readings", "iot-controller", || plain_loop(bs, &telemetry, n, validated), || controller(bs, &prefix, n))
}

fn controller(bs: &str, prefix: &str, n: u64) -> anyhow::Result<f64> {
    let app = unique("bench-iot");
    let unknown = prometheus::IntCounter::new("unknown", "unregistered")?;
    let settings = Settings { topics: streamcore::TopicNames::prefixed(prefix), ..Settings::new(&app, unknown) };
    let input = format!("{prefix}{TELEMETRY_TOPIC}");
    let repartition = streamcore::topology::repartition_topic(&app, BY_DEVICE);
    let secs = crate::timed::through_repartition(bs, build_topology(&settings)?, &input, &repartition, n, Default::default())?;
    println!("iot-controller: {n} readings in {secs:.2}s");
    Ok(n as f64 / secs)
}
