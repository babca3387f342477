//! Windowed aggregation through the test driver: grace, late records on `<service>.late`, the two emit modes,
//! closing windows when input goes quiet, and stream time kept per sub-topology.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use streamcore::codec::Json;
use streamcore::state::StoreSpec;
use streamcore::task::Outcome;
use streamcore::testkit::TopologyTestDriver;
use streamcore::time::{EventTime, TimestampKind};
use streamcore::window::{EmitMode, TimeWindows, Window, Windowed, WindowedAggregation};
use streamcore::{Record, TopologyBuilder};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Click {
    user: String,
    at: i64,
}

const MIN: i64 = 60_000;

/// Clicks per user in tumbling 1-minute windows with 30 s grace, re-keyed by user through a repartition topic.
fn clicks(emit: EmitMode, idle: Option<Duration>) -> streamcore::Topology {
    let b = TopologyBuilder::new("clicks");
    let src = b.source("clicks", Json::<Click>::new(), |c: &Click| EventTime { millis: c.at, kind: TimestampKind::Payload });
    let mut spec =
        WindowedAggregation::new(TimeWindows::tumbling(chrono::Duration::minutes(1)).expect("windows"), StoreSpec::in_memory("per-minute"))
            .grace(Duration::from_secs(30))
            .emit(emit);
    if let Some(quiet) = idle {
        spec = spec.close_when_idle(quiet);
    }
    let counts = src.repartition("by-user", |r: &Record<Click>| Some(r.value.user.clone())).aggregate_windowed(
        "count",
        spec,
        |n: Option<u64>, _r: &Record<Click>, _w: &Window| Ok(n.unwrap_or(0) + 1),
    );
    counts.to("counts-sink", "counts", Json::new(), |r: &Record<Windowed<u64>>| r.key.clone());
    drop((src, counts));
    b.build().expect("topology")
}

fn click(d: &mut TopologyTestDriver, user: &str, at: i64) -> Outcome {
    d.pipe_json("clicks", None, &Click { user: user.into(), at }).expect("pipe")
}

fn counts(d: &mut TopologyTestDriver) -> Vec<(String, i64, u64, bool)> {
    let out: Vec<Windowed<u64>> = d.read_json("counts").expect("json");
    out.into_iter().map(|w| (w.key, w.window.start / MIN, w.value, w.closed)).collect()
}

#[test]
fn grace_admits_stragglers_and_late_records_go_to_the_late_topic_unchanged() {
    let mut d = TopologyTestDriver::new(clicks(EmitMode::OnUpdate, None));
    click(&mut d, "ann", 10 * MIN + 5_000);
    click(&mut d, "ann", 11 * MIN + 20_000); // stream time 11:20
    click(&mut d, "ann", 10 * MIN + 50_000); // out of order, window [10,11) closes at 11:30: accepted
    assert_eq!(counts(&mut d), vec![("ann".into(), 10, 1, false), ("ann".into(), 11, 1, false), ("ann".into(), 10, 2, false)]);

    click(&mut d, "ann", 11 * MIN + 30_000); // stream time reaches 11:30: [10,11) is closed now
    click(&mut d, "ann", 10 * MIN + 59_999); // beyond grace
    assert_eq!(counts(&mut d), vec![("ann".into(), 11, 2, false)], "the late click changed nothing");
    let late = d.read_output(&d.late_topic());
    assert_eq!(late.len(), 1);
    let header = |name: &str| late[0].headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert_eq!(header("late.operator").as_deref(), Some("count"));
    assert_eq!(header("event.time"), Some((10 * MIN + 59_999).to_string()));
    assert_eq!(header("observed.time"), Some((11 * MIN + 30_000).to_string()));
    assert_eq!(late[0].key.as_deref(), Some(&b"ann"[..]));
    let value: Click = serde_json::from_slice(late[0].value.as_deref().expect("value")).expect("click");
    assert_eq!(value, Click { user: "ann".into(), at: 10 * MIN + 59_999 });
    assert!(
        d.store("per-minute", 0).expect("store").get(&streamcore::window::store::window_key("ann", 10 * MIN)).expect("get").is_none(),
        "a closed window leaves the store"
    );
}

#[test]
fn emit_on_close_forwards_each_window_once_with_its_final_value() {
    let mut d = TopologyTestDriver::new(clicks(EmitMode::OnClose, None));
    for at in [5_000, 20_000, 61_000, 62_000, 63_000] {
        click(&mut d, "bo", at);
    }
    assert_eq!(counts(&mut d), vec![], "nothing is final before stream time passes end + grace");
    click(&mut d, "bo", MIN + 30_000);
    assert_eq!(counts(&mut d), vec![("bo".into(), 0, 2, true)]);
    click(&mut d, "bo", 3 * MIN);
    assert_eq!(counts(&mut d), vec![("bo".into(), 1, 4, true)]);
}

#[test]
fn a_quiet_partition_closes_its_windows_on_the_wall_clock() {
    let mut d = TopologyTestDriver::new(clicks(EmitMode::OnClose, Some(Duration::from_secs(60))));
    click(&mut d, "cy", 5_000);
    click(&mut d, "cy", 50_000);
    d.advance_wall_clock(Duration::from_secs(59)).expect("punctuate");
    assert_eq!(counts(&mut d), vec![], "not quiet for long enough yet");
    // 60 s quiet: observed time moves to 0:50 + 60 s = 1:50, past [0,1) + 30 s grace.
    d.advance_wall_clock(Duration::from_secs(1)).expect("punctuate");
    assert_eq!(counts(&mut d), vec![("cy".into(), 0, 2, true)]);
    assert_eq!(click(&mut d, "cy", 59_000), Outcome::Processed);
    assert_eq!(d.read_output(&d.late_topic()).len(), 1, "a click for the window closed on the wall clock is late");
    let mut without = TopologyTestDriver::new(clicks(EmitMode::OnClose, None));
    click(&mut without, "cy", 5_000);
    without.advance_wall_clock(Duration::from_secs(3600)).expect("punctuate");
    assert_eq!(counts(&mut without), vec![], "without close_when_idle only stream time closes windows");
}

#[test]
fn stream_time_is_kept_per_sub_topology() {
    // Partition 0 of the input carries a click far in the future for a user that repartitions to another task.
    // Were stream time shared between the input's sub-topology and the repartitioned one, task 0's windows
    // would close early.
    let mut d = TopologyTestDriver::new(clicks(EmitMode::OnUpdate, None)).with_partitions(4);
    let (near, far) = (["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"], 1000 * MIN);
    let p = |u: &str| streamcore::partition::partition_for(u.as_bytes(), 4);
    let home = near.iter().find(|u| p(u) == 0).expect("a user on partition 0");
    let other = near.iter().find(|u| p(u) != 0).expect("a user elsewhere");
    d.pipe_json("clicks", None, &Click { user: home.to_string(), at: 5_000 }).expect("pipe");
    d.pipe_json("clicks", None, &Click { user: other.to_string(), at: far }).expect("pipe");
    d.pipe_json("clicks", None, &Click { user: home.to_string(), at: 6_000 }).expect("pipe");
    assert!(d.read_output(&d.late_topic()).is_empty());
    let got = counts(&mut d);
    assert_eq!(got.iter().filter(|c| c.0 == *home).map(|c| c.2).collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn unkeyed_records_cannot_be_aggregated_and_are_dead_lettered() {
    let b = TopologyBuilder::new("raw");
    let src = b.source("clicks", Json::<Click>::new(), |c: &Click| EventTime { millis: c.at, kind: TimestampKind::Payload });
    let spec = WindowedAggregation::new(TimeWindows::tumbling(chrono::Duration::minutes(1)).expect("windows"), StoreSpec::in_memory("w"));
    let counts = src.aggregate_windowed("count", spec, |n: Option<u64>, _: &Record<Click>, _: &Window| Ok(n.unwrap_or(0) + 1));
    drop((src, counts));
    let mut d = TopologyTestDriver::new(b.build().expect("topology"));
    assert!(matches!(click(&mut d, "x", 0), Outcome::DeadLettered(reason) if reason.contains("no")));
    assert_eq!(d.read_output(&d.dead_letter_topic()).len(), 1);
}
