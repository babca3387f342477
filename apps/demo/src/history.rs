//! What the live page draws over time, which no service keeps: each thermostat's readings and the commands it was
//! sent, and the fraud alerts per rule per minute. The page reads them back from the services' topics with a
//! consumer of its own, a reader like any other outside the services (every partition of the three topics from
//! the beginning, committing under a group id of its own), and keeps the newest in memory. It commits what it has
//! taken in, and only that, so the demo can wait until the page has caught up as it waits for the services
//! ([`TOPICS`], [`group_id`]). Times are event times (`ts`), so a replay draws the same picture.
//!
//! The figures are for drawing only: temperatures go into `f64` here, never back into a result.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Readings kept per thermostat: at one reading every 30 simulated seconds, the last hour.
const READINGS_KEPT: usize = 120;
/// Commands kept per thermostat.
const COMMANDS_KEPT: usize = 40;
/// Minutes of alert counts kept.
const MINUTES_KEPT: usize = 120;

/// The topics read (the contract's names).
const TELEMETRY: &str = "telemetry";
const THERMOSTAT_COMMANDS: &str = "device-commands.thermostat";
const FRAUD_ALERTS: &str = "fraud-alerts";
/// Everything the page reads.
pub(crate) const TOPICS: [&str; 3] = [TELEMETRY, THERMOSTAT_COMMANDS, FRAUD_ALERTS];

/// The page's consumer group: one per demo process.
pub(crate) fn group_id() -> String {
    format!("demo-page-{}", std::process::id())
}

/// One thermostat's recent past: `(event time in ms, °C)` and `(event time in ms, action)`, oldest first.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Thermostat {
    readings: VecDeque<(i64, f64)>,
    commands: VecDeque<(i64, String)>,
}

/// Everything drawn over time.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct History {
    thermostats: BTreeMap<String, Thermostat>,
    /// Minute (ms since the epoch, event time) -> rule -> alerts that named it.
    alerts_per_minute: BTreeMap<i64, BTreeMap<String, u64>>,
    /// Records of these topics the page could not read (the services dead-letter them; here they are only counted).
    unreadable: u64,
}

#[derive(Deserialize)]
struct Reading {
    device_id: String,
    ts: chrono::DateTime<chrono::FixedOffset>,
    temperature_c: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Command {
    device_id: String,
    action: String,
    ts: chrono::DateTime<chrono::FixedOffset>,
}

#[derive(Deserialize)]
struct Alert {
    rules: Vec<String>,
    ts: chrono::DateTime<chrono::FixedOffset>,
}

/// A decimal given as a JSON string or number, as a float for drawing.
fn figure(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        other => other.as_f64(),
    }
}

fn push_bounded<T>(list: &mut VecDeque<T>, item: T, kept: usize) {
    list.push_back(item);
    while list.len() > kept {
        list.pop_front();
    }
}

impl History {
    /// Takes in one record of `topic`; what cannot be read is counted.
    fn add(&mut self, topic: &str, payload: &[u8]) {
        let read = match topic {
            TELEMETRY => serde_json::from_slice::<Reading>(payload).map(|r| {
                // Washers report detergent, not temperature: only thermostats are drawn.
                if let Some(celsius) = r.temperature_c.as_ref().and_then(figure) {
                    let t = self.thermostats.entry(r.device_id).or_default();
                    push_bounded(&mut t.readings, (r.ts.timestamp_millis(), celsius), READINGS_KEPT);
                }
            }),
            THERMOSTAT_COMMANDS => serde_json::from_slice::<Command>(payload).map(|c| {
                let t = self.thermostats.entry(c.device_id).or_default();
                push_bounded(&mut t.commands, (c.ts.timestamp_millis(), c.action), COMMANDS_KEPT);
            }),
            _ => serde_json::from_slice::<Alert>(payload).map(|a| {
                let minute = a.ts.timestamp_millis().div_euclid(60_000) * 60_000;
                let counts = self.alerts_per_minute.entry(minute).or_default();
                for rule in a.rules {
                    *counts.entry(rule).or_default() += 1;
                }
                while self.alerts_per_minute.len() > MINUTES_KEPT {
                    self.alerts_per_minute.pop_first();
                }
            }),
        };
        if read.is_err() {
            self.unreadable += 1;
        }
    }
}

/// The history, shared between the reader and the page's handler.
pub(crate) type Shared = Arc<Mutex<History>>;

/// Reads the three topics into `history` until `stopped` resolves.
pub(crate) async fn follow(bootstrap: String, history: Shared, stopped: impl Future<Output = ()>) -> anyhow::Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group_id())
        // Offsets are stored by hand once a record is in the history, and committed from there in the background.
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "200")
        .create()?;
    // Assigned by hand, never subscribed: the page is no member of a group that rebalances, so dropping the consumer
    // at the end closes it at once (a subscribed one waits for its revocation, and at the demo's end it once waited
    // forever).
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(30))?;
    let mut partitions = TopicPartitionList::new();
    for topic in metadata.topics().iter().filter(|t| TOPICS.contains(&t.name())) {
        for p in topic.partitions() {
            partitions.add_partition_offset(topic.name(), p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&partitions)?;
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return Ok(()),
            received = consumer.recv() => match received {
                Ok(m) => {
                    history.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(m.topic(), m.payload().unwrap_or_default());
                    consumer.store_offset_from_message(&m)?;
                }
                // A passing broker error: librdkafka retries by itself, and the page keeps what it has.
                Err(e) => tracing::debug!("the page's history reader: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_commands_and_alerts_are_kept_by_event_time_and_what_cannot_be_read_is_counted() {
        let mut h = History::default();
        h.add(TELEMETRY, br#"{"device_id":"thermostat-1","ts":"2026-11-23T12:00:30Z","temperature_c":"19.25"}"#);
        h.add(TELEMETRY, br#"{"device_id":"washer-1","ts":"2026-11-23T12:00:30Z","detergent_pct":"40"}"#);
        h.add(THERMOSTAT_COMMANDS, br#"{"device_id":"thermostat-1","action":"heat_on","ts":"2026-11-23T12:05:00Z"}"#);
        h.add(FRAUD_ALERTS, br#"{"rules":["velocity","amount_anomaly"],"ts":"2026-11-23T12:00:59Z"}"#);
        h.add(FRAUD_ALERTS, br#"{"rules":["velocity"],"ts":"2026-11-23T12:00:01Z"}"#);
        h.add(FRAUD_ALERTS, b"not json");

        let t = &h.thermostats["thermostat-1"];
        assert_eq!(t.readings, [(1_795_435_230_000, 19.25)]);
        assert_eq!(t.commands, [(1_795_435_500_000, "heat_on".to_owned())]);
        assert!(!h.thermostats.contains_key("washer-1"), "washers have no temperature to draw");
        let minute = &h.alerts_per_minute[&1_795_435_200_000];
        assert_eq!((minute["velocity"], minute["amount_anomaly"]), (2, 1));
        assert_eq!(h.unreadable, 1);
    }

    #[test]
    fn each_thermostat_keeps_only_its_newest_readings() {
        let mut h = History::default();
        for i in 0..READINGS_KEPT + 5 {
            let ts = chrono::DateTime::from_timestamp(i as i64 * 30, 0).expect("ts").to_rfc3339();
            h.add(TELEMETRY, format!(r#"{{"device_id":"t","ts":"{ts}","temperature_c":20}}"#).as_bytes());
        }
        let readings = &h.thermostats["t"].readings;
        assert_eq!(readings.len(), READINGS_KEPT);
        assert_eq!(readings.front().map(|r| r.0), Some(5 * 30_000), "the oldest five went");
    }
}
