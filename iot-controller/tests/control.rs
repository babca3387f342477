//! The controller through the test driver: averages across window boundaries, commands only on a change of
//! mode, one reorder per day across midnight, unknown and removed devices, out-of-order and late readings,
//! malformed input.

use iot_controller::control::DeviceState;
use iot_controller::model::{Action, Command};
use iot_controller::topology::{build_topology, Settings, DEVICES_TOPIC, STATE_STORE, TELEMETRY_TOPIC};
use prometheus::IntCounter;
use rust_decimal::Decimal;
use serde_json::json;
use streamcore::record::OutgoingRecord;
use streamcore::testkit::TopologyTestDriver;
use streamcore::time::RecordTimestamp;

const THERMOSTAT_COMMANDS: &str = "device-commands.thermostat";
const WASHER_COMMANDS: &str = "device-commands.washer";

fn driver() -> (TopologyTestDriver, IntCounter) {
    let unknown = IntCounter::new("unknown", "unknown devices").expect("counter");
    let topology = build_topology(&Settings::new("iot-controller", unknown.clone())).expect("topology");
    (TopologyTestDriver::new(topology), unknown)
}

/// `2026-11-24T<hms>Z` (or a full RFC 3339 time).
fn at(t: &str) -> String {
    if t.contains('T') {
        t.to_owned()
    } else {
        format!("2026-11-24T{t}Z")
    }
}

fn register(d: &mut TopologyTestDriver, id: &str, home: &str, kind: &str) {
    let v = json!({"device_id": id, "home_id": home, "kind": kind, "target_c": "21.0", "band_c": "1.0"});
    d.pipe_with(DEVICES_TOPIC, 0, Some(id), Some(v.to_string().as_bytes()), RecordTimestamp::CreateTime(0)).expect("register");
}

fn remove(d: &mut TopologyTestDriver, id: &str) {
    d.pipe_with(DEVICES_TOPIC, 0, Some(id), None, RecordTimestamp::CreateTime(0)).expect("remove");
}

fn temperature(d: &mut TopologyTestDriver, id: &str, t: &str, c: &str) {
    d.pipe_json(TELEMETRY_TOPIC, Some(id), &json!({"device_id": id, "ts": at(t), "temperature_c": c})).expect("reading");
}

fn detergent(d: &mut TopologyTestDriver, id: &str, t: &str, pct: &str) {
    d.pipe_json(TELEMETRY_TOPIC, Some(id), &json!({"device_id": id, "ts": at(t), "detergent_pct": pct})).expect("reading");
}

fn commands(d: &mut TopologyTestDriver, topic: &str) -> Vec<Command> {
    d.read_json(topic).expect("commands decode")
}

fn actions(cs: &[Command]) -> Vec<Action> {
    cs.iter().map(|c| c.action).collect()
}

fn state(d: &TopologyTestDriver, id: &str) -> Option<DeviceState> {
    d.store(STATE_STORE, 0).and_then(|s| s.get_json(id).expect("state decodes"))
}

fn header(r: &OutgoingRecord, name: &str) -> String {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

#[test]
fn a_reading_on_a_window_boundary_counts_in_the_window_it_starts() {
    let (mut d, _) = driver();
    register(&mut d, "t1", "h1", "thermostat");
    for m in 0..5 {
        temperature(&mut d, "t1", &format!("12:0{m}:30"), "21");
    }
    // 12:05:00 is the end of [12:00, 12:05) (exclusive) and inside [12:01, 12:06).
    temperature(&mut d, "t1", "12:05:00", "15");
    assert!(commands(&mut d, THERMOSTAT_COMMANDS).is_empty(), "every closed window so far averaged 21");
    temperature(&mut d, "t1", "12:06:30", "15");
    let cs = commands(&mut d, THERMOSTAT_COMMANDS);
    assert_eq!(actions(&cs), vec![Action::HeatOn], "[12:01, 12:06) averages (4 x 21 + 15) / 5 = 19.8 < 20");
    let c = &cs[0];
    assert_eq!((c.device_id.as_str(), c.home_id.as_str()), ("t1", "h1"));
    assert_eq!(c.ts.to_rfc3339(), "2026-11-24T12:06:00+00:00", "the command answers the window's end");
    assert!(c.reason.contains("19.8"), "{}", c.reason);
    let s = state(&d, "t1").expect("state");
    let avg = s.average.expect("average");
    assert_eq!((avg.avg_c, avg.readings), (dec("19.8"), 5));
    assert_eq!(s.mode, Some(Action::HeatOn));
}

#[test]
fn commands_go_out_only_when_the_desired_mode_changes() {
    let (mut d, _) = driver();
    register(&mut d, "t1", "h1", "thermostat");
    let mut minute = 0;
    let mut phase = |d: &mut TopologyTestDriver, c: &str, minutes: u32| {
        for _ in 0..minutes {
            temperature(d, "t1", &format!("{:02}:{:02}:30", 12 + minute / 60, minute % 60), c);
            minute += 1;
        }
    };
    phase(&mut d, "15", 10);
    phase(&mut d, "21", 10);
    phase(&mut d, "25", 10);
    phase(&mut d, "21.5", 10);
    let cs = commands(&mut d, THERMOSTAT_COMMANDS);
    assert_eq!(actions(&cs), vec![Action::HeatOn, Action::Idle, Action::CoolOn, Action::Idle]);
    let ids: std::collections::BTreeSet<&str> = cs.iter().map(|c| c.command_id.as_str()).collect();
    assert_eq!(ids.len(), 4, "command ids are unique");
    assert!(cs.windows(2).all(|w| w[0].ts < w[1].ts));
}

#[test]
fn a_washer_reorders_once_per_calendar_day_across_midnight() {
    let (mut d, _) = driver();
    register(&mut d, "w1", "h1", "washer");
    detergent(&mut d, "w1", "23:50:00", "12");
    detergent(&mut d, "w1", "23:55:00", "9.5");
    detergent(&mut d, "w1", "23:58:00", "8");
    detergent(&mut d, "w1", "2026-11-25T00:05:00Z", "7");
    detergent(&mut d, "w1", "2026-11-25T00:10:00Z", "6");
    // Delayed from the day before, after today's order: no second order for yesterday.
    detergent(&mut d, "w1", "23:59:00", "5");
    let cs = commands(&mut d, WASHER_COMMANDS);
    assert_eq!(actions(&cs), vec![Action::ReorderDetergent, Action::ReorderDetergent]);
    assert_eq!(cs[0].ts.to_rfc3339(), "2026-11-24T23:55:00+00:00");
    assert_eq!(cs[1].ts.to_rfc3339(), "2026-11-25T00:05:00+00:00");
    assert!(commands(&mut d, THERMOSTAT_COMMANDS).is_empty(), "routed by kind");
    let latest = state(&d, "w1").and_then(|s| s.latest).expect("latest");
    assert_eq!(latest.detergent_pct, Some(dec("6")), "the delayed reading is not the latest");
}

#[test]
fn unknown_devices_are_counted_and_dead_lettered_and_a_removed_device_gets_no_more_commands() {
    let (mut d, unknown) = driver();
    temperature(&mut d, "ghost", "12:00:00", "10");
    let dlq = d.read_output(&d.dead_letter_topic());
    assert_eq!(dlq.len(), 1);
    assert!(header(&dlq[0], "error").contains("ghost is not in the registry"), "{}", header(&dlq[0], "error"));
    assert_eq!(unknown.get(), 1);

    register(&mut d, "t1", "h1", "thermostat");
    register(&mut d, "t2", "h1", "thermostat");
    for m in 0..3 {
        temperature(&mut d, "t1", &format!("12:0{m}:30"), "15");
        temperature(&mut d, "t2", &format!("12:0{m}:30"), "21");
    }
    assert_eq!(actions(&commands(&mut d, THERMOSTAT_COMMANDS)), vec![Action::HeatOn]);
    // t1 warms up, and is removed before any warm window closes: t2's readings close them, and t1 gets nothing.
    for m in 3..5 {
        temperature(&mut d, "t1", &format!("12:0{m}:30"), "21");
    }
    remove(&mut d, "t1");
    assert!(state(&d, "t1").is_none(), "a removed device's state is forgotten");
    for m in 3..20 {
        temperature(&mut d, "t2", &format!("12:{m:02}:30"), "21");
    }
    assert!(commands(&mut d, THERMOSTAT_COMMANDS).is_empty(), "no idle for the removed t1");
    temperature(&mut d, "t1", "12:20:00", "21");
    assert_eq!(unknown.get(), 2, "a removed device is unknown");
    assert_eq!(d.read_output(&d.dead_letter_topic()).len(), 1);

    // Registered again, it starts afresh: idle is assumed, so a comfortable home gets no command.
    register(&mut d, "t1", "h1", "thermostat");
    for m in 21..30 {
        temperature(&mut d, "t1", &format!("12:{m:02}:30"), "21");
    }
    assert!(commands(&mut d, THERMOSTAT_COMMANDS).is_empty());
    assert_eq!(state(&d, "t1").and_then(|s| s.mode), Some(Action::Idle));
}

#[test]
fn out_of_order_readings_within_grace_count_and_later_ones_go_to_the_late_topic() {
    let (mut d, _) = driver();
    register(&mut d, "t1", "h1", "thermostat");
    temperature(&mut d, "t1", "12:00:30", "21");
    temperature(&mut d, "t1", "12:05:10", "21");
    // 20 s after [12:00, 12:05) ended, within its 30 s grace: it counts there.
    temperature(&mut d, "t1", "12:04:50", "13");
    temperature(&mut d, "t1", "12:05:40", "21");
    let cs = commands(&mut d, THERMOSTAT_COMMANDS);
    assert_eq!(actions(&cs), vec![Action::HeatOn], "[12:00, 12:05) averages (21 + 13) / 2 = 17");
    assert_eq!(cs[0].ts.to_rfc3339(), "2026-11-24T12:05:00+00:00");
    assert_eq!(state(&d, "t1").and_then(|s| s.latest).map(|r| r.ts.to_rfc3339()), Some("2026-11-24T12:05:40+00:00".into()));

    // Stream time 12:05:40: every window holding 12:00:20 closed at 12:05:30 at the latest.
    temperature(&mut d, "t1", "12:00:20", "30");
    let late = d.read_output(&d.late_topic());
    assert_eq!(late.len(), 1);
    assert_eq!(header(&late[0], "late.operator"), "avg-5m");
    assert_eq!(late[0].key.as_deref(), Some(b"t1".as_slice()));
    temperature(&mut d, "t1", "12:30:00", "21");
    let cs = commands(&mut d, THERMOSTAT_COMMANDS);
    assert_eq!(actions(&cs), vec![Action::Idle], "the late 30 changed nothing: back to the band, no cool_on");
}

#[test]
fn malformed_readings_are_dead_lettered_and_unkeyed_ones_still_land() {
    let (mut d, _) = driver();
    register(&mut d, "t1", "h1", "thermostat");
    register(&mut d, "w1", "h1", "washer");
    let bad: [(&str, &[u8], &str); 7] = [
        ("not json", b"{", "EOF"),
        ("no ts", br#"{"device_id": "t1", "temperature_c": 20}"#, "ts"),
        ("both", br#"{"device_id": "t1", "ts": "2026-11-24T12:00:00Z", "temperature_c": 20, "detergent_pct": 5}"#, "not both"),
        ("neither", br#"{"device_id": "t1", "ts": "2026-11-24T12:00:00Z"}"#, "needs temperature_c or detergent_pct"),
        ("hot", br#"{"device_id": "t1", "ts": "2026-11-24T12:00:00Z", "temperature_c": "900"}"#, "outside -90..90"),
        ("full", br#"{"device_id": "w1", "ts": "2026-11-24T12:00:00Z", "detergent_pct": 150}"#, "outside 0..100"),
        ("kind", br#"{"device_id": "w1", "ts": "2026-11-24T12:00:00Z", "temperature_c": 20}"#, "w1 is a washer"),
    ];
    for (what, value, _) in bad {
        d.pipe(TELEMETRY_TOPIC, Some("t1"), value).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let dlq = d.read_output(&d.dead_letter_topic());
    assert_eq!(dlq.len(), bad.len());
    for ((what, value, reason), r) in bad.iter().zip(&dlq) {
        assert!(header(r, "error").contains(reason), "{what}: {}", header(r, "error"));
        if *what != "kind" {
            assert_eq!(r.value.as_deref(), Some(*value), "{what}: the original bytes");
            assert_eq!(header(r, "source.topic"), TELEMETRY_TOPIC);
        }
    }
    // A registry entry of a kind the controller does not know is dead-lettered too.
    d.pipe(DEVICES_TOPIC, Some("f1"), br#"{"device_id": "f1", "home_id": "h1", "kind": "fridge"}"#).expect("pipe");
    assert_eq!(d.read_output(&d.dead_letter_topic()).len(), 1);

    // Unkeyed, and keyed by the home instead of the device: repartitioned by device_id, both land.
    d.pipe(TELEMETRY_TOPIC, None, br#"{"device_id": "w1", "ts": "2026-11-24T12:00:00Z", "detergent_pct": 40}"#).expect("pipe");
    assert_eq!(state(&d, "w1").and_then(|s| s.latest).and_then(|r| r.detergent_pct), Some(dec("40")));
    d.pipe(TELEMETRY_TOPIC, Some("h1"), br#"{"device_id": "w1", "ts": "2026-11-24T12:01:00Z", "detergent_pct": 9}"#).expect("pipe");
    assert_eq!(actions(&commands(&mut d, WASHER_COMMANDS)), vec![Action::ReorderDetergent]);
    assert!(d.read_output(&d.dead_letter_topic()).is_empty());
}
