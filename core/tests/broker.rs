//! The runtime against a real Kafka broker (started by `scripts/test`): keyed state in RocksDB with its changelog,
//! dead letters with the contract's headers, restore after the state directory is lost, resuming from the local
//! checkpoint (no replay) when it is intact, and a restoring task that holds up none of the others.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use streamcore::codec::Json;
use streamcore::runtime::Guarantee;
use streamcore::state::StoreSpec;
use streamcore::testkit::kafka::{
    add_partitions, bootstrap, create_topic, create_topic_with, delete_records, produce, read_to_end, read_topic, unique, wait_caught_up,
};
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
    status: streamcore::runtime::RuntimeStatus,
}

fn start(app: &str, input: &str, output: &str, state: &std::path::Path) -> Run {
    start_with(app, input, output, state, Guarantee::AtLeastOnce)
}

fn start_with(app: &str, input: &str, output: &str, state: &std::path::Path, guarantee: Guarantee) -> Run {
    start_configured(app, input, output, state, |cfg| cfg.guarantee = guarantee)
}

fn start_configured(app: &str, input: &str, output: &str, state: &std::path::Path, configure: impl FnOnce(&mut StreamsConfig)) -> Run {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
    let mut cfg = StreamsConfig::new("counter", &bootstrap());
    configure(&mut cfg);
    cfg.state_dir = state.to_path_buf();
    cfg.commit_interval = Duration::from_millis(200);
    cfg.kafka_properties = vec![("message.max.bytes".into(), "500000".into())];
    let registry = prometheus::Registry::new();
    let rt = Runtime::new(topology(app, input, output), cfg, &registry).expect("runtime");
    let (shutdown, status) = (rt.shutdown_handle(), rt.status());
    Run { handle: rt.spawn().expect("spawn"), shutdown, registry, status }
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

/// How many samples each series of histogram `name` holds, by the value of its label `label` ("" without one).
fn samples(registry: &prometheus::Registry, name: &str, label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for family in registry.gather().iter().filter(|f| f.name() == name) {
        for m in family.get_metric() {
            let key = m.get_label().iter().find(|l| l.name() == label).map(|l| l.value().to_owned()).unwrap_or_default();
            *out.entry(key).or_default() += m.get_histogram().get_sample_count();
        }
    }
    out
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
    let registry = run.stop();
    // Every commit timed each of its steps, so a slow commit says which wait made it slow.
    let commits = samples(&registry, "streamcore_commit_latency_seconds", "")[""];
    let phases = samples(&registry, "streamcore_commit_phase_seconds", "phase");
    assert!(commits >= 1, "the offsets reached the end through at least one commit");
    for phase in ["outputs_acked", "changelogs_sent", "changelogs_acked", "offsets_committed", "stores_applied"] {
        assert!(phases.get(phase).is_some_and(|&n| n >= commits), "{phase}: {phases:?} for {commits} commits");
    }
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
    assert!(message.contains("has 3 partitions but the sub-topology reading it has 2"), "{message}");
}

/// Records the broker takes in and then refuses out, every time: an output larger than its topic's
/// `max.message.bytes` (below the producer's own limit, so only the broker can say no), and a record stamped two
/// days ahead whose dead-letter copy keeps that timestamp, which the dead-letter topic refuses (Kafka 4 takes
/// timestamps at most an hour ahead by default). Each is retried alone a bounded number of times, then
/// dead-lettered with the broker's reason; everything around it is counted exactly once under exactly-once, and
/// the runtime neither stops (at-least-once) nor aborts forever (exactly-once).
#[test]
fn records_the_broker_keeps_refusing_are_dead_lettered_and_everything_else_flows() {
    use rdkafka::producer::{BaseRecord, Producer};
    for guarantee in [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
        let bs = bootstrap();
        let (input, output, app) = (unique("events"), unique("counts"), unique("refused-app"));
        create_topic_with(&bs, &input, 1, &[("message.timestamp.after.max.ms", &i64::MAX.to_string())]);
        create_topic_with(&bs, &output, 1, &[("max.message.bytes", "4096")]);
        let long_id = "L".repeat(5000);
        let producer = streamcore::testkit::kafka::producer(&bs);
        let ahead = chrono::Utc::now().timestamp_millis() + 2 * 86_400_000;
        let mut sent = 0;
        for (i, (key, value, ts)) in (0..12)
            .map(|i| match i {
                4 => (long_id.clone(), event(&long_id, 1).1, None),
                8 => ("ahead".to_owned(), b"{not json".to_vec(), Some(ahead)),
                _ => (format!("id-{}", i % 3), event(&format!("id-{}", i % 3), i).1, None),
            })
            .enumerate()
        {
            let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(&input).key(key.as_str()).payload(value.as_slice());
            if let Some(ts) = ts {
                record = record.timestamp(ts);
            }
            producer.send(record).unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
            sent += 1;
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        assert_eq!(sent, 12);

        let state = tempfile::tempdir().expect("tempdir");
        let run = start_with(&app, &input, &output, state.path(), guarantee);
        assert!(
            wait_caught_up(&bs, &app, &input, Duration::from_secs(120)),
            "{guarantee}: offsets were not committed past the refused records"
        );
        let registry = run.stop();
        let out = read_to_end(&bs, &output, Duration::from_secs(30)).expect("outputs");
        assert_eq!(last_counts(&out), BTreeMap::from([("id-0".into(), 4), ("id-1".into(), 3), ("id-2".into(), 3)]), "{guarantee}");
        if guarantee == Guarantee::ExactlyOnce {
            assert_eq!(out.len(), 10, "exactly one output per good record");
        }
        let dlq = read_to_end(&bs, "counter.dlq", Duration::from_secs(30)).expect("dead letters");
        let ours: BTreeMap<&str, &streamcore::testkit::kafka::Consumed> =
            dlq.iter().filter(|r| r.headers.get("source.topic") == Some(&input)).map(|r| (r.key.as_deref().expect("key"), r)).collect();
        assert_eq!(ours.len(), 2, "{guarantee}: both refused records dead-lettered once: {:?}", ours.keys());
        let big = &ours[long_id.as_str()].headers["error"];
        assert!(big.contains("refused this record's output 3 times") && big.contains(&output) && big.contains("too large"), "{big}");
        let late = &ours["ahead"].headers;
        assert!(late["error"].contains("refused this record's output 3 times") && late["error"].contains("timestamp"), "{late:?}");
        assert_eq!(late["source.timestamp"], ahead.to_string(), "the input's timestamp kept in a header");
        assert_eq!(metric(&registry, "streamcore_refused_records_total"), 2.0, "{guarantee}");
        assert_eq!(metric(&registry, "streamcore_thread_restarts_total"), 0.0, "{guarantee}: no thread restarted");
    }
}

fn end_of(bootstrap: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("consumer");
    c.fetch_watermarks(topic, 0, Duration::from_secs(10)).expect("watermarks").1
}

/// A store whose checkpoint lies below its changelog's start (records deleted under it, by retention or
/// `kafka-delete-records`) is rebuilt from what the changelog holds, not patched from its start: the local copy
/// would keep keys whose only records (their tombstones among them) are gone.
#[test]
fn a_checkpoint_below_the_changelogs_start_rebuilds_the_store() {
    let bs = bootstrap();
    let (input, output, app) = (unique("events"), unique("counts"), unique("trimmed-app"));
    create_topic(&bs, &input, 1, false);
    let changelog = format!("{app}-counts-changelog");
    // Compacted and with retention, as a changelog may be configured: only then does its start move (the broker
    // refuses DeleteRecords on a topic that is compacted only).
    create_topic_with(&bs, &changelog, 1, &[("cleanup.policy", "compact,delete"), ("retention.ms", "-1")]);
    let (first, second) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));

    // The first instance counts x and stops, its checkpoint at the changelog's end.
    produce(&bs, &input, &[event("x", 1), event("x", 1)]);
    let run = start(&app, &input, &output, first.path());
    assert!(wait_caught_up(&bs, &app, &input, Duration::from_secs(120)));
    run.stop();
    let checkpoint = end_of(&bs, &changelog);

    // Another instance, with state of its own, counts y and z; then the changelog loses x and one of them.
    produce(&bs, &input, &[event("y", 1), event("z", 1)]);
    let run = start(&app, &input, &output, second.path());
    assert!(wait_caught_up(&bs, &app, &input, Duration::from_secs(120)));
    run.stop();
    let low = delete_records(&bs, &changelog, 0, rdkafka::Offset::Offset(checkpoint + 1));
    assert!(low > checkpoint, "the changelog now starts above the first instance's checkpoint");
    let kept = last_counts(&read_to_end(&bs, &changelog, Duration::from_secs(30)).expect("changelog"));
    assert_eq!(kept.len(), 1, "one of y and z is left: {kept:?}");

    // The first instance comes back on its old state.
    produce(&bs, &input, &[event("x", 1), event("y", 1), event("z", 1)]);
    let run = start(&app, &input, &output, first.path());
    let out = read_topic(&bs, &output, 7, Duration::from_secs(120));
    assert!(wait_caught_up(&bs, &app, &input, Duration::from_secs(120)));
    run.stop();
    assert_eq!(out.len(), 7);
    let last = last_counts(&out[4..]);
    for id in ["x", "y", "z"] {
        assert_eq!(last[id], kept.get(id).copied().unwrap_or(0) + 1, "{id}: counted on from what the changelog holds, {kept:?}");
    }
}

/// A global table whose records all expired (low watermark = end > 0) is read to its end at once: the runtime
/// starts and joins against the empty table, instead of waiting for a position no record reports.
#[test]
fn a_global_table_whose_records_all_expired_is_bootstrapped_at_once() {
    let bs = bootstrap();
    let (orders, discounts, joined, app) = (unique("orders"), unique("discounts"), unique("joined"), unique("expired-app"));
    create_topic(&bs, &orders, 1, false);
    create_topic(&bs, &discounts, 2, false);
    let entries: Vec<_> = (0..10).map(|i| event(&format!("id-{i}"), i)).collect();
    produce(&bs, &discounts, &entries);
    for partition in 0..2 {
        delete_records(&bs, &discounts, partition, rdkafka::Offset::End);
    }
    let b = TopologyBuilder::new(app.clone());
    let table = b.global_table(&discounts, Json::<Event>::new(), "discounts");
    let events = b.source(&orders, Json::<Event>::new(), |e: &Event| EventTime::payload(&e.ts));
    let out = events.join_global(
        "join",
        &table,
        |r: &Record<Event>| Some(r.value.id.clone()),
        |r: Record<Event>, d: Option<Event>| (r.value.n, d.map(|d| d.n)),
    );
    out.to("sink", &joined, Json::new(), |r: &Record<(i64, Option<i64>)>| r.key.clone());
    drop((events, out));
    let state = tempfile::tempdir().expect("state");
    let mut cfg = StreamsConfig::new("expired", &bs);
    cfg.state_dir = state.path().to_path_buf();
    let rt = Runtime::new(b.build().expect("topology"), cfg, &prometheus::Registry::new()).expect("runtime");
    let shutdown = rt.shutdown_handle();
    let handle = rt.spawn().expect("spawn");
    produce(&bs, &orders, &[event("id-3", 7)]);
    let out = read_topic(&bs, &joined, 1, Duration::from_secs(90));
    shutdown.trigger();
    handle.join().expect("stream thread panicked").expect("runtime failed");
    assert_eq!(out.iter().map(|r| r.json()).collect::<Vec<_>>(), vec![serde_json::json!([7, null])], "joined against the empty table");
}

/// A source topic that gains partitions while the application runs stops it with the reason: the new partitions
/// would be read out of step with the other sources, and keys would move away from their state.
#[test]
fn a_source_topic_that_gains_partitions_stops_the_runtime_with_the_reason() {
    let bs = bootstrap();
    let (input, output, app) = (unique("events"), unique("counts"), unique("growing-app"));
    create_topic(&bs, &input, 1, false);
    let state = tempfile::tempdir().expect("tempdir");
    let run = start(&app, &input, &output, state.path());
    produce(&bs, &input, &[event("id-0", 1)]);
    assert_eq!(read_topic(&bs, &output, 1, Duration::from_secs(60)).len(), 1, "running");
    add_partitions(&bs, &input, 2);
    let err = run.handle.join().expect("stream thread panicked").expect_err("must stop");
    let message = err.to_string();
    assert!(message.contains(&format!("source topic {input} now has 2 partitions where the application started with 1")), "{message}");
}

/// The first `<prefix>-<n>` that the runtime's partitioner puts on `partition` of `partitions`.
fn key_on(prefix: &str, partition: i32, partitions: i32) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|k| streamcore::partition::partition_for(k.as_bytes(), partitions) == partition)
        .expect("some key lands on every partition")
}

fn count_json(id: &str, count: u64) -> Vec<u8> {
    serde_json::to_vec(&Count { id: id.to_owned(), count, sum: count as i64 }).expect("json")
}

/// Fill `partition` (of 2) of the counts changelog with `n` counts of keys that belong there, the last one 5 for
/// `last`.
fn preload_changelog(bs: &str, changelog: &str, partition: i32, n: u64, last: &str) {
    use rdkafka::producer::Producer;
    let plain = streamcore::testkit::kafka::producer(bs);
    let old = (0..).map(|i| format!("old-{i}")).filter(|k| streamcore::partition::partition_for(k.as_bytes(), 2) == partition);
    for (id, count) in old.take(n as usize - 1).map(|k| (k, 1)).chain([(last.to_owned(), 5)]) {
        let record = count_json(&id, count);
        streamcore::testkit::kafka::send_raw(&plain, changelog, Some(id.as_bytes()), Some(&record)).expect("send");
        plain.poll(Duration::ZERO);
    }
    plain.flush(Duration::from_secs(60)).expect("flush");
}

#[test]
fn a_task_restoring_its_stores_holds_up_none_of_the_others() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let bs = bootstrap();
    let (input, output, app) = (unique("events"), unique("counts"), unique("restoring-app"));
    create_topic(&bs, &input, 2, false);
    create_topic(&bs, &output, 2, false);
    let changelog = format!("{app}-counts-changelog");
    create_topic(&bs, &changelog, 2, true);
    let (busy, restored) = (key_on("busy", 0, 2), key_on("restored", 1, 2));

    // Partition 1's store as a previous owner left it: 500,000 counts, the last one `restored`'s. Partition 0's
    // store is empty, so its task is restored at once.
    const CHANGELOG: u64 = 500_000;
    preload_changelog(&bs, &changelog, 1, CHANGELOG, &restored);
    let mut events: Vec<_> = (1..=200).map(|n| event(&busy, n)).collect();
    events.push(event(&restored, 1));
    produce(&bs, &input, &events);

    // Reading the output from before the start, to see what arrives before the runtime is ready.
    let reader: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("reader");
    reader.subscribe(&[output.as_str()]).expect("subscribe");
    let state = tempfile::tempdir().expect("tempdir");
    let run = start(&app, &input, &output, state.path());
    let (mut before_ready, mut seen_restoring) = (0, false);
    while !run.status.is_ready() {
        seen_restoring |= run.status.restoring() == std::collections::BTreeSet::from([streamcore::task_id::TaskId::new(0, 1)]);
        if let Some(msg) = reader.poll(Duration::from_millis(20)) {
            msg.expect("output");
            // Not ready means partition 1 is still restoring: with restores inside the rebalance callback, no task
            // processes anything until every restore of the rebalance has ended.
            if !run.status.is_ready() {
                before_ready += 1;
            }
        }
        assert!(!run.handle.is_finished(), "the runtime stopped");
    }
    assert!(seen_restoring, "/readyz named task 0_1 as restoring");
    assert!(before_ready > 0, "the running task produced output while the other restored {CHANGELOG} records");

    let out = read_topic(&bs, &output, 201, Duration::from_secs(60));
    assert_eq!(out.len(), 201, "every event counted once");
    assert_eq!(last_counts(&out)[&restored], 6, "counted on from the restored 5");
    assert!(wait_caught_up(&bs, &app, &input, Duration::from_secs(60)), "offsets committed to the end");
    let registry = run.stop();
    assert_eq!(metric(&registry, "streamcore_restored_records_total"), CHANGELOG as f64, "every changelog record restored");
}

/// Two instances of the counter with one standby replica each: each keeps a warm copy of the other's task. When
/// A stops, B takes A's task over, replays none of the changelog its replica already holds, and counts on from
/// where A left off.
#[test]
fn a_standby_replica_promoted_on_a_takeover_replays_only_what_it_lacks() {
    let bs = bootstrap();
    let (input, output, app) = (unique("events"), unique("counts"), unique("standby-app"));
    create_topic(&bs, &input, 2, false);
    create_topic(&bs, &output, 2, false);
    let changelog = format!("{app}-counts-changelog");
    create_topic(&bs, &changelog, 2, true);
    const CHANGELOG: u64 = 100_000;
    let keys = [key_on("zero", 0, 2), key_on("one", 1, 2)];
    for (p, key) in keys.iter().enumerate() {
        preload_changelog(&bs, &changelog, p as i32, CHANGELOG, key);
    }
    let standby = |url: &'static str| {
        move |cfg: &mut StreamsConfig| {
            cfg.advertised_url = Some(url.into());
            cfg.standby_replicas = 1;
        }
    };
    let (state_a, state_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let a = start_configured(&app, &input, &output, state_a.path(), standby("http://a.invalid"));
    assert!(wait_until(Duration::from_secs(120), || a.status.is_ready() && a.status.tasks() == 2), "A runs both tasks");
    let b = start_configured(&app, &input, &output, state_b.path(), standby("http://b.invalid"));
    let shared = || a.status.is_ready() && b.status.is_ready() && a.status.tasks() == 1 && b.status.tasks() == 1;
    assert!(wait_until(Duration::from_secs(120), shared), "the two tasks are shared");
    let moving = *a.status.active().iter().next().expect("A's task");

    // B's replica of A's task has read its whole changelog.
    let lag = |r: &prometheus::Registry| {
        let families = r.gather();
        let family = families.iter().find(|f| f.name() == "streamcore_standby_lag_records")?;
        let at = moving.partition.to_string();
        let metric = family.get_metric().iter().find(|m| m.get_label().iter().any(|l| l.name() == "partition" && l.value() == at))?;
        Some(metric.get_gauge().get_value())
    };
    assert!(wait_until(Duration::from_secs(120), || lag(&b.registry) == Some(0.0)), "B's replica of {moving} caught up");
    assert!(metric(&b.registry, "streamcore_standby_records_total") >= CHANGELOG as f64, "the replica was filled from the changelog");
    let restored_before = metric(&b.registry, "streamcore_restored_records_total");

    // A stops; after its session timeout, B runs both tasks.
    a.stop();
    assert!(wait_until(Duration::from_secs(120), || b.status.is_ready() && b.status.tasks() == 2), "B took {moving} over");
    let replayed = metric(&b.registry, "streamcore_restored_records_total") - restored_before;
    assert_eq!(replayed, 0.0, "the promoted replica held the whole changelog: nothing replayed");
    produce(&bs, &input, &[event(&keys[moving.partition as usize], 1)]);
    let out = read_topic(&bs, &output, 1, Duration::from_secs(60));
    assert_eq!(last_counts(&out)[&keys[moving.partition as usize]], 6, "counted on from the replica's 5");
    b.stop();
}

/// Wait until `done` holds, for at most `timeout`; whether it did. (A runtime's status has no change events.)
fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The counter beside a count per key in 10-second windows that close once the partition is quiet for 2 s.
fn windowed_topology(app: &str, input: &str, counts: &str, windows: &str) -> streamcore::Topology {
    use streamcore::window::{TimeWindows, Window, Windowed, WindowedAggregation};
    let b = TopologyBuilder::new(app);
    let events = b.source(input, Json::<Event>::new(), |e: &Event| EventTime::payload(&e.ts));
    let counted = events.process("count", &[StoreSpec::persistent("counts")], || Counter);
    counted.to("counts-sink", counts, Json::new(), |r: &Record<Count>| Some(r.value.id.clone()));
    let spec =
        WindowedAggregation::new(TimeWindows::tumbling(chrono::Duration::seconds(10)).expect("windows"), StoreSpec::persistent("per-10s"))
            .close_when_idle(Duration::from_secs(2));
    let per_window = events.aggregate_windowed("per-10s", spec, |n: Option<u64>, _: &Record<Event>, _: &Window| Ok(n.unwrap_or(0) + 1));
    per_window.to("windows-sink", windows, Json::new(), |r: &Record<Windowed<u64>>| r.key.clone());
    drop((events, counted, per_window));
    b.build().expect("topology")
}

/// Records in the changelog of the task an instance takes back in
/// [`a_takeover_restore_holds_up_no_running_task_closes_no_window_as_idle_and_fences_no_transaction`]: enough
/// for a restore longer than the transaction timeout (10 s) in a debug build.
const TAKEN_BACK: u64 = 1_500_000;

#[test]
fn a_takeover_restore_holds_up_no_running_task_closes_no_window_as_idle_and_fences_no_transaction() {
    use rdkafka::producer::Producer;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    for guarantee in [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
        let bs = bootstrap();
        let (input, counts, windows, app) = (unique("events"), unique("counts"), unique("windows"), unique("idle-app"));
        create_topic(&bs, &input, 2, false);
        let changelog = format!("{app}-counts-changelog");
        create_topic(&bs, &changelog, 2, true);
        let start_instance = |state: &std::path::Path| {
            let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
            let mut cfg = StreamsConfig::new("counter", &bs);
            cfg.state_dir = state.to_path_buf();
            cfg.commit_interval = Duration::from_millis(200);
            cfg.guarantee = guarantee;
            let registry = prometheus::Registry::new();
            let rt = Runtime::new(windowed_topology(&app, &input, &counts, &windows), cfg, &registry).expect("runtime");
            let (shutdown, status) = (rt.shutdown_handle(), rt.status());
            Run { handle: rt.spawn().expect("spawn"), shutdown, registry, status }
        };
        let (state_a, state_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let a = start_instance(state_a.path());
        assert!(wait_until(Duration::from_secs(120), || a.status.is_ready() && a.status.tasks() == 2), "{guarantee:?}: A runs both tasks");
        let b = start_instance(state_b.path());
        assert!(
            wait_until(Duration::from_secs(120), || b.status.is_ready() && b.status.tasks() == 1 && a.status.tasks() == 1),
            "{guarantee:?}: B took a task over"
        );
        // The sticky assignor chooses which: B's state directory holds its store.
        let moved = (0..2).find(|p| state_b.path().join(&app).join(p.to_string()).exists()).expect("B's task's state");
        let busy = key_on("busy", 1 - moved, 2);

        // A's other task stays busy: an event every 50 ms, all in the window [14:30:00, 14:30:10) and near its end,
        // so that two quiet seconds would close it (idle closing moves the partition's time on by the quiet time).
        let feeding = Arc::new(AtomicBool::new(true));
        let feeder = {
            let (bs, input, busy, feeding) = (bs.clone(), input.clone(), busy.clone(), feeding.clone());
            std::thread::spawn(move || {
                let p = streamcore::testkit::kafka::producer(&bs);
                let mut sent = 0u64;
                while feeding.load(Ordering::SeqCst) {
                    let v = serde_json::json!({"id": busy, "n": 1, "ts": "2026-11-24T14:30:09.900Z"});
                    let value = serde_json::to_vec(&v).expect("json");
                    streamcore::testkit::kafka::send_raw(&p, &input, Some(busy.as_bytes()), Some(&value)).expect("send");
                    sent += 1;
                    p.flush(Duration::from_secs(10)).expect("flush");
                    std::thread::sleep(Duration::from_millis(50));
                }
                sent
            })
        };
        // The moved task's changelog grows large (B, which gets no input for it, never reads it again), A's copy of
        // it goes (as a clean-up of tasks moved away would remove it), and B leaves: after the session timeout A
        // takes the task back and restores it from scratch. With restores inside the rebalance callback the busy
        // task gets no poll for that long: its first punctuation after it closes the window on the wall clock, and
        // under exactly-once its open transaction passes its timeout.
        preload_changelog(&bs, &changelog, moved, TAKEN_BACK, &key_on("restored", moved, 2));
        std::fs::remove_dir_all(state_a.path().join(&app).join(moved.to_string())).expect("remove A's copy");
        b.stop();
        assert!(
            wait_until(Duration::from_secs(180), || a.status.is_ready() && a.status.tasks() == 2),
            "{guarantee:?}: A took the task back"
        );
        feeding.store(false, Ordering::SeqCst);
        let sent = feeder.join().expect("feeder");
        assert!(wait_caught_up(&bs, &app, &input, Duration::from_secs(60)), "{guarantee:?}: offsets committed to the end");
        let registry = a.stop();
        assert!(metric(&registry, "streamcore_restored_records_total") >= TAKEN_BACK as f64, "{guarantee:?}: A restored the task");
        assert_eq!(metric(&registry, "streamcore_late_records_total"), 0.0, "{guarantee:?}: no event of the busy task was late");
        assert_eq!(metric(&registry, "streamcore_aborted_transactions_total"), 0.0, "{guarantee:?}: no transaction aborted");
        assert_eq!(metric(&registry, "streamcore_thread_restarts_total"), 0.0, "{guarantee:?}: no thread restarted");
        let out = read_to_end(&bs, &windows, Duration::from_secs(30)).expect("windows");
        let last: serde_json::Value =
            serde_json::from_slice(out.last().and_then(|r| r.value.as_deref()).expect("a window update")).expect("json");
        assert_eq!(last["value"].as_u64(), Some(sent), "{guarantee:?}: every event of the busy task counted once: {last}");
    }
}
