//! The runtime against a real Kafka broker (started by `scripts/test`): keyed state in RocksDB with its changelog,
//! dead letters with the contract's headers, restore after the state directory is lost, and resuming from the
//! local checkpoint (no replay) when it is intact.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use streamcore::codec::Json;
use streamcore::state::StoreSpec;
use streamcore::testkit::kafka::{bootstrap, create_topic, produce, read_topic, unique, wait_caught_up};
use streamcore::time::EventTime;
use streamcore::{ProcessError, Processor, ProcessorContext, Record, Runtime, StreamsConfig, TopologyBuilder};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    id: String,
    n: i64,
    ts: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Count {
    id: String,
    count: u64,
    sum: i64,
}

/// Counts events per id in a RocksDB store.
struct Counter;

impl Processor for Counter {
    type In = Event;
    type Out = Count;
    fn process(&mut self, r: Record<Event>, ctx: &mut ProcessorContext<'_, '_, Count>) -> Result<(), ProcessError> {
        let store = ctx.store("counts")?;
        let mut c = store.get_json::<Count>(&r.value.id)?.unwrap_or(Count { id: r.value.id.clone(), count: 0, sum: 0 });
        c.count += 1;
        c.sum += r.value.n;
        store.put_json(&r.value.id, &c)?;
        ctx.forward(r.with_value(c));
        Ok(())
    }
}

fn topology(app: &str, input: &str, output: &str) -> streamcore::Topology {
    let b = TopologyBuilder::new(app);
    let events = b.source(input, Json::<Event>::new(), |e: &Event| EventTime::payload(&e.ts));
    let valid = events.try_map_values("validate", |e: Event| {
        if e.n < 0 {
            Err(ProcessError::Invalid(format!("n must not be negative, got {}", e.n)))
        } else {
            Ok(e)
        }
    });
    let counts = valid.process("count", &[StoreSpec::persistent("counts")], || Counter);
    counts.to("counts-sink", output, Json::new(), |r: &Record<Count>| Some(r.value.id.clone()));
    drop((events, valid, counts));
    b.build().expect("topology")
}

fn event(id: &str, n: i64) -> (Option<String>, Vec<u8>) {
    let v = serde_json::json!({"id": id, "n": n, "ts": "2026-11-24T14:30:00.250Z"});
    (Some(id.to_owned()), serde_json::to_vec(&v).expect("json"))
}

struct Run {
    handle: std::thread::JoinHandle<Result<(), streamcore::StreamError>>,
    shutdown: streamcore::runtime::Shutdown,
    registry: prometheus::Registry,
}

fn start(app: &str, input: &str, output: &str, state: &std::path::Path) -> Run {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
    let mut cfg = StreamsConfig::new("counter", &bootstrap());
    cfg.state_dir = state.to_path_buf();
    cfg.commit_interval = Duration::from_millis(200);
    cfg.kafka_properties = vec![("message.max.bytes".into(), "500000".into())];
    let registry = prometheus::Registry::new();
    let rt = Runtime::new(topology(app, input, output), cfg, &registry).expect("runtime");
    let shutdown = rt.shutdown_handle();
    Run { handle: rt.spawn().expect("spawn"), shutdown, registry }
}

impl Run {
    fn stop(self) -> prometheus::Registry {
        self.shutdown.trigger();
        self.handle.join().expect("stream thread panicked").expect("runtime failed");
        self.registry
    }
}

fn metric(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()).collect::<Vec<_>>())
        .sum()
}

fn last_counts(records: &[streamcore::testkit::kafka::Consumed]) -> BTreeMap<String, u64> {
    let mut last = BTreeMap::new();
    for r in records {
        let c: Count = serde_json::from_slice(r.value.as_deref().expect("value")).expect("count");
        last.insert(c.id, c.count);
    }
    last
}

#[test]
fn keyed_state_dead_letters_restore_and_checkpoint_resume() {
    let bs = bootstrap();
    let (input, output, app) = (unique("events"), unique("counts"), unique("counter-app"));
    create_topic(&bs, &input, 3, false);
    let state = tempfile::tempdir().expect("tempdir");

    // 10 ids x 10 events, plus three bad records.
    let mut records: Vec<_> = (0..100).map(|i| event(&format!("id-{}", i % 10), i)).collect();
    records.push((Some("bad-1".into()), b"{not json".to_vec()));
    records.push(event("id-0", -5));
    records.push((Some("bad-3".into()), br#"{"id": "id-1", "n": 1}"#.to_vec()));
    // Two larger than the service's producer takes (its message.max.bytes is 500000, see `start`; the input's
    // producer had the default 1 MB): one whose dead-letter copy must be cut to fit, one valid event whose output
    // would be refused.
    records.push((Some("bad-big".into()), vec![b'x'; 600_000]));
    let big_id = "i".repeat(590_000);
    records.push((Some("big-id".into()), event(&big_id, 1).1));
    produce(&bs, &input, &records);

    let run = start(&app, &input, &output, state.path());
    let out = read_topic(&bs, &output, 100, Duration::from_secs(60));
    assert!(wait_caught_up(&bs, &app, &input, Duration::from_secs(60)), "offsets were not committed to the end");
    run.stop();
    assert_eq!(out.len(), 100, "one output per valid event");
    assert!(last_counts(&out).values().all(|&c| c == 10), "every id counted 10 times: {:?}", last_counts(&out));

    let dlq = read_topic(&bs, "counter.dlq", usize::MAX, Duration::from_secs(5));
    let ours: Vec<_> = dlq.iter().filter(|r| r.headers.get("source.topic") == Some(&input)).collect();
    assert_eq!(ours.len(), 5, "five dead letters");
    let by_key: BTreeMap<&str, &streamcore::testkit::kafka::Consumed> =
        ours.iter().map(|r| (r.key.as_deref().expect("original key kept"), *r)).collect();
    let big = by_key["bad-big"];
    assert!(big.headers["error"].starts_with("not JSON"));
    assert_eq!(big.headers["value.truncated.from"], "600000", "cut to fit, saying how long it was");
    assert!(by_key["big-id"].headers["error"].contains("bytes a record may have"), "{:?}", by_key["big-id"].headers["error"]);
    assert!(by_key["bad-1"].headers["error"].starts_with("not JSON"), "{:?}", by_key["bad-1"]);
    assert_eq!(by_key["bad-1"].value.as_deref(), Some(&b"{not json"[..]), "original bytes kept");
    assert_eq!(by_key["id-0"].headers["error"], "n must not be negative, got -5");
    assert!(by_key["bad-3"].headers["error"].contains("missing field `ts`"), "{:?}", by_key["bad-3"]);
    for r in &ours {
        assert!(r.headers.contains_key("source.partition") && r.headers.contains_key("source.offset"));
    }

    // Intact state: the restart resumes from the checkpoint and replays nothing.
    produce(&bs, &input, &[event("id-0", 1)]);
    let run = start(&app, &input, &output, state.path());
    let out = read_topic(&bs, &output, 101, Duration::from_secs(60));
    assert!(wait_caught_up(&bs, &app, &input, Duration::from_secs(60)));
    let registry = run.stop();
    assert_eq!(last_counts(&out)["id-0"], 11, "state carried over the restart");
    assert_eq!(metric(&registry, "streamcore_restored_records_total"), 0.0, "intact local state is not rebuilt");

    // State directory lost: the counts come back from the changelog.
    std::fs::remove_dir_all(state.path()).expect("wipe state");
    produce(&bs, &input, &[event("id-0", 1), event("id-5", 1)]);
    let run = start(&app, &input, &output, state.path());
    let out = read_topic(&bs, &output, 103, Duration::from_secs(60));
    assert!(wait_caught_up(&bs, &app, &input, Duration::from_secs(60)));
    let registry = run.stop();
    let last = last_counts(&out);
    assert_eq!((last["id-0"], last["id-5"]), (12, 11), "restored from the changelog, then counted on");
    assert!(metric(&registry, "streamcore_restored_records_total") >= 10.0, "the wiped store was restored from the changelog");
}

#[test]
fn a_stream_table_join_refuses_topics_that_are_not_co_partitioned() {
    let bs = bootstrap();
    let (stream, table) = (unique("orders"), unique("prices"));
    create_topic(&bs, &stream, 4, false);
    create_topic(&bs, &table, 2, true);
    let b = TopologyBuilder::new(unique("join"));
    let prices = b.table(&table, Json::<Count>::new(), StoreSpec::in_memory("prices"));
    let events = b.source(&stream, Json::<Event>::new(), |e: &Event| EventTime::payload(&e.ts));
    let joined = events.join_table("join", &prices, |r: Record<Event>, c: Option<Count>| (r.value.n, c.map(|c| c.count)));
    joined.to("sink", &unique("joined"), Json::new(), |r: &Record<(i64, Option<u64>)>| r.key.clone());
    drop((prices, events, joined));
    let state = tempfile::tempdir().expect("state");
    let mut cfg = StreamsConfig::new("join", &bs);
    cfg.state_dir = state.path().to_path_buf();
    let rt = Runtime::new(b.build().expect("topology"), cfg, &prometheus::Registry::new()).expect("runtime");
    let err = rt.run().expect_err("must refuse to start");
    let message = err.to_string();
    assert!(message.contains("not co-partitioned") && message.contains(&stream) && message.contains(&table), "{message}");
}

#[test]
fn a_repartition_topic_with_other_partitions_than_the_input_is_refused_at_start() {
    let bs = bootstrap();
    let (input, app) = (unique("orders"), unique("rekey"));
    create_topic(&bs, &input, 2, false);
    let b = TopologyBuilder::new(app.clone());
    let events = b.source(&input, Json::<Event>::new(), |e: &Event| EventTime::payload(&e.ts));
    let rekeyed = events.repartition("by-id", |r: &Record<Event>| Some(r.value.id.clone()));
    rekeyed.to("sink", &unique("out"), Json::new(), |r: &Record<Event>| r.key.clone());
    drop((events, rekeyed));
    let topology = b.build().expect("topology");
    // Left behind by an earlier run of the application with more input partitions.
    create_topic(&bs, &topology.internal_topics()[0], 3, false);
    let state = tempfile::tempdir().expect("state");
    let mut cfg = StreamsConfig::new("rekey", &bs);
    cfg.state_dir = state.path().to_path_buf();
    let rt = Runtime::new(topology, cfg, &prometheus::Registry::new()).expect("runtime");
    let message = rt.run().expect_err("must refuse to start").to_string();
    assert!(message.contains("has 3 partitions but the input has 2"), "{message}");
}
