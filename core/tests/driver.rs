//! The stateless operators, event time from the payload or the record timestamp, and the retry outcome, through
//! the in-memory test driver (the same task code the runtime runs).

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use streamcore::codec::Json;
use streamcore::task::Outcome;
use streamcore::testkit::TopologyTestDriver;
use streamcore::time::{EventTime, RecordTimestamp, TimestampMode};
use streamcore::{ProcessError, Processor, ProcessorContext, Record, TopologyBuilder};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Word {
    text: String,
    ts: DateTime<FixedOffset>,
}

fn word(text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"text": text, "ts": "2026-03-08T06:59:59.999Z"})).expect("json")
}

const PAYLOAD_MS: i64 = 1_772_953_199_999;

fn words_topology() -> streamcore::Topology {
    let b = TopologyBuilder::new("words");
    let words = b.source("words", Json::<Word>::new(), |w: &Word| EventTime::payload(&w.ts));
    let branches = words
        .filter("non-empty", |r: &Record<Word>| !r.value.text.is_empty())
        .flat_map("split", |r: Record<Word>| {
            r.value.text.split(' ').map(|t| Record { key: r.key.clone(), value: t.to_owned(), time: r.time }).collect()
        })
        .map("key-by-word", |r: Record<String>| Record { key: Some(r.value.clone()), value: r.value.len(), time: r.time })
        .branch("by-length", vec![Box::new(|r: &Record<usize>| r.value <= 3), Box::new(|r: &Record<usize>| r.value <= 6)]);
    branches[0].to("short-sink", "short", Json::new(), |r: &Record<usize>| r.key.clone());
    branches[1].map_values("double", |n: usize| n * 2).to("medium-sink", "medium", Json::new(), |r: &Record<usize>| r.key.clone());
    drop((words, branches));
    b.build().expect("topology")
}

#[test]
fn stateless_operators_route_records_and_keep_event_time() {
    let mut d = TopologyTestDriver::new(words_topology());
    assert_eq!(d.pipe("words", Some("k"), &word("the quick brown fox jumps overhead")).expect("pipe"), Outcome::Processed);
    assert_eq!(d.pipe("words", Some("k"), &word("")).expect("pipe"), Outcome::Processed);
    let short: Vec<(Option<String>, usize)> = d
        .read_output("short")
        .into_iter()
        .map(|r| (r.key.map(|k| String::from_utf8(k).expect("utf8")), serde_json::from_slice(&r.value.expect("value")).expect("n")))
        .collect();
    assert_eq!(short, vec![(Some("the".into()), 3), (Some("fox".into()), 3)]);
    let medium = d.read_output("medium");
    let values: Vec<usize> = medium.iter().map(|r| serde_json::from_slice(r.value.as_deref().expect("value")).expect("n")).collect();
    assert_eq!(values, vec![10, 10, 10], "quick, brown, jumps doubled; overhead (8) matched no branch");
    assert!(medium.iter().all(|r| r.timestamp.is_none()), "outputs are stamped by the producer; event time stays in the payload");
}

#[test]
fn record_timestamp_mode_uses_the_kafka_timestamp_and_says_which() {
    struct Stamp;
    impl Processor for Stamp {
        type In = Word;
        type Out = String;
        fn process(&mut self, r: Record<Word>, ctx: &mut ProcessorContext<'_, '_, String>) -> Result<(), ProcessError> {
            let label = format!("{}@{} stream={:?}", r.time.kind.as_str(), r.time.millis, ctx.stream_time());
            ctx.forward(r.with_value(label));
            Ok(())
        }
    }
    let build = || {
        let b = TopologyBuilder::new("stamps");
        b.source("words", Json::<Word>::new(), |w: &Word| EventTime::payload(&w.ts)).process("stamp", &[], || Stamp).to(
            "sink",
            "out",
            Json::new(),
            |_: &Record<String>| None,
        );
        b.build().expect("topology")
    };
    let mut payload = TopologyTestDriver::new(build());
    payload.pipe_with("words", 0, None, Some(&word("a")), RecordTimestamp::LogAppendTime(5_000)).expect("pipe");
    assert_eq!(payload.read_json::<String>("out").expect("json"), vec![format!("payload@{PAYLOAD_MS} stream=Some({PAYLOAD_MS})")]);

    let mut record = TopologyTestDriver::new(build()).with_timestamp_mode(TimestampMode::Record);
    record.pipe_with("words", 0, None, Some(&word("a")), RecordTimestamp::LogAppendTime(5_000)).expect("pipe");
    record.pipe_with("words", 0, None, Some(&word("b")), RecordTimestamp::CreateTime(4_000)).expect("pipe");
    let outcome = record.pipe_with("words", 0, None, Some(&word("c")), RecordTimestamp::NotAvailable).expect("pipe");
    assert_eq!(outcome, Outcome::DeadLettered("record has no timestamp".into()));
    assert_eq!(
        record.read_json::<String>("out").expect("json"),
        vec!["log-append-time@5000 stream=Some(5000)".to_owned(), "create-time@4000 stream=Some(5000)".to_owned()],
        "stream time does not go back for an older record"
    );
}

#[test]
fn a_transient_failure_asks_for_a_retry_and_the_record_is_not_consumed() {
    struct Flaky(Arc<AtomicU32>);
    impl Processor for Flaky {
        type In = Word;
        type Out = Word;
        fn process(&mut self, r: Record<Word>, ctx: &mut ProcessorContext<'_, '_, Word>) -> Result<(), ProcessError> {
            if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(ProcessError::Retry("downstream unavailable".into()));
            }
            ctx.forward(r);
            Ok(())
        }
    }
    let attempts = Arc::new(AtomicU32::new(0));
    let b = TopologyBuilder::new("flaky");
    let a = attempts.clone();
    b.source("words", Json::<Word>::new(), |w: &Word| EventTime::payload(&w.ts)).process("flaky", &[], move || Flaky(a.clone())).to(
        "sink",
        "out",
        Json::new(),
        |_: &Record<Word>| None,
    );
    let mut d = TopologyTestDriver::new(b.build().expect("topology"));
    for _ in 0..2 {
        assert_eq!(d.pipe("words", None, &word("x")).expect("pipe"), Outcome::Retry("downstream unavailable".into()));
    }
    assert_eq!(d.pipe("words", None, &word("x")).expect("pipe"), Outcome::Processed);
    assert_eq!(d.read_output("out").len(), 1, "forwarded once, on the attempt that succeeded");
    assert!(d.read_output("flaky.dlq").is_empty());
}

/// Counts words in a store and forwards the count, then fails the first `failures` attempts (with `fail`) after
/// it wrote: the runtime must take the write and the output back.
struct CountThenFail {
    attempts: Arc<AtomicU32>,
    failures: u32,
    fail: fn() -> ProcessError,
}

impl Processor for CountThenFail {
    type In = Word;
    type Out = u64;
    fn process(&mut self, r: Record<Word>, ctx: &mut ProcessorContext<'_, '_, u64>) -> Result<(), ProcessError> {
        let store = ctx.store("counts")?;
        let n = store.get_json::<u64>(&r.value.text)?.unwrap_or(0) + 1;
        store.put_json(&r.value.text, &n)?;
        ctx.forward(r.with_value(n));
        if self.attempts.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err((self.fail)());
        }
        Ok(())
    }
}

fn count_then_fail(failures: u32, fail: fn() -> ProcessError) -> TopologyTestDriver {
    let attempts = Arc::new(AtomicU32::new(0));
    let b = TopologyBuilder::new("counting");
    b.source("words", Json::<Word>::new(), |w: &Word| EventTime::payload(&w.ts))
        .process("count", &[streamcore::state::StoreSpec::in_memory("counts")], move || CountThenFail {
            attempts: attempts.clone(),
            failures,
            fail,
        })
        .to("sink", "out", Json::new(), |_: &Record<u64>| None);
    TopologyTestDriver::new(b.build().expect("topology"))
}

#[test]
fn a_retried_record_repeats_neither_its_outputs_nor_its_store_writes() {
    let mut d = count_then_fail(2, || ProcessError::Retry("downstream unavailable".into()));
    for _ in 0..2 {
        assert!(matches!(d.pipe("words", None, &word("x")).expect("pipe"), Outcome::Retry(_)));
    }
    assert_eq!(d.pipe("words", None, &word("x")).expect("pipe"), Outcome::Processed);
    assert_eq!(d.read_json::<u64>("out").expect("out"), vec![1], "one output, counted once, though attempted three times");
    assert_eq!(d.store("counts", 0).expect("store").get_json::<u64>("x").expect("read"), Some(1));
    assert_eq!(d.read_output("counting-counts-changelog").len(), 0, "nothing logged before a commit");
}

#[test]
fn a_record_refused_part_way_leaves_nothing_but_its_dead_letter() {
    let mut d = count_then_fail(1, || ProcessError::Invalid("refused after writing".into()));
    assert_eq!(d.pipe("words", None, &word("x")).expect("pipe"), Outcome::DeadLettered("refused after writing".into()));
    assert_eq!(d.pipe("words", None, &word("x")).expect("pipe"), Outcome::Processed);
    assert_eq!(d.read_json::<u64>("out").expect("out"), vec![1], "the refused record neither counted nor forwarded");
    assert_eq!(d.read_output("counting.dlq").len(), 1);
}

fn header(r: &streamcore::record::OutgoingRecord, name: &str) -> Option<String> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn a_value_too_large_to_copy_whole_still_reaches_the_dead_letter_topic_cut_to_fit() {
    let mut d = TopologyTestDriver::new(words_topology());
    // About 1 MB, as a default-configured producer may send it: the copy with its headers is over the limit.
    let huge = vec![b'x'; streamcore::record::DEFAULT_MAX_RECORD_BYTES - 10];
    let outcome = d.pipe_with("words", 0, Some("k"), Some(&huge), RecordTimestamp::CreateTime(7)).expect("pipe");
    assert!(matches!(outcome, Outcome::DeadLettered(ref r) if r.starts_with("not JSON")), "{outcome:?}");
    let dlq = d.read_output("words.dlq");
    let [copy] = dlq.as_slice() else { panic!("one dead letter, got {}", dlq.len()) };
    assert!(copy.size() <= streamcore::record::DEFAULT_MAX_RECORD_BYTES - streamcore::record::RECORD_OVERHEAD_BYTES);
    assert_eq!(header(copy, "value.truncated.from"), Some(huge.len().to_string()));
    assert_eq!((copy.key.as_deref(), header(copy, "key.truncated.from")), (Some(&b"k"[..]), None), "the key is kept whole");
    assert_eq!((header(copy, "source.topic").as_deref(), header(copy, "source.offset").as_deref()), (Some("words"), Some("0")));
    assert!(copy.value.as_deref().is_some_and(|v| huge.starts_with(v) && v.len() > 900_000), "the value's beginning is kept");
    assert_eq!(d.pipe("words", Some("k"), &word("fine")).expect("pipe"), Outcome::Processed, "and the next record flows");
}

#[test]
fn an_output_the_producer_would_refuse_dead_letters_its_input_before_anything_is_sent() {
    let b = TopologyBuilder::new("echo");
    b.source("words", Json::<Word>::new(), |w: &Word| EventTime::payload(&w.ts))
        .map_values("repeat", |w: Word| w.text.repeat(if w.text == "big" { 400_000 } else { 1 }))
        .to("sink", "out", Json::new(), |_: &Record<String>| None);
    let mut d = TopologyTestDriver::new(b.build().expect("topology"));
    let outcome = d.pipe("words", None, &word("big")).expect("pipe");
    assert!(matches!(&outcome, Outcome::DeadLettered(r) if r.contains("its output to out is 1200002 bytes")), "{outcome:?}");
    assert_eq!(d.pipe("words", None, &word("small")).expect("pipe"), Outcome::Processed);
    assert_eq!(d.read_json::<String>("out").expect("out"), vec!["small".to_owned()]);
    assert_eq!(d.read_output("echo.dlq").len(), 1);
}

#[test]
fn build_rejects_duplicate_names_and_graphs_without_sources() {
    let b = TopologyBuilder::new("dup");
    let s = b.source("t", Json::<Word>::new(), |w: &Word| EventTime::payload(&w.ts));
    s.filter("same", |_| true);
    s.filter("same", |_| true);
    drop(s);
    let err = b.build().err().expect("duplicate names are rejected");
    assert!(err.to_string().contains("two nodes are named \"same\""), "{err}");
    assert!(TopologyBuilder::new("empty").build().is_err());
}
