//! Restore rate: how fast a runtime rebuilds its stores from their changelogs on an empty state directory, as an
//! instance does when it takes over tasks whose local state it never had (or lost with its disk).
//!
//! `bench restore` pre-loads `--records` distinct keys into the changelog of the keyed-state benchmark's `totals`
//! store (`<app>-totals-changelog`, `--partitions` partitions), as a previous owner would have left it, then times:
//!
//! 1. **plain read**: assign-only rdkafka consumers, one per changelog partition on a thread of its own, reading it
//!    from its start to its end and doing nothing with the records: the ceiling of any restore, the baseline (run
//!    before and after, and averaged);
//! 2. **runtime restore**: the keyed-state topology started on an empty state directory, from `Runtime::spawn`
//!    until it reports itself ready with every task restored. Its own metrics (`streamcore_restored_records_total`
//!    over `streamcore_restore_seconds_total`, summed over restores that run at the same time) give one restore's
//!    rate.

use crate::{RunningTotal, Total, Txn};
use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rust_decimal::Decimal;
use std::time::{Duration, Instant};
use streamcore::codec::Json;
use streamcore::state::StoreSpec;
use streamcore::testkit::kafka::{create_topic, producer, send_raw, unique};
use streamcore::time::EventTime;
use streamcore::{Record, Runtime, StreamsConfig, TopologyBuilder};

/// Pre-load, then the plain read, the runtime's restore with `threads` stream threads, and the plain read again.
pub(crate) fn run(bs: &str, records: u64, partitions: i32, threads: usize) -> anyhow::Result<()> {
    let app = unique("bench-restore");
    let changelog = format!("{app}-totals-changelog");
    let input = unique("bench-restore-in");
    create_topic(bs, &input, partitions, false);
    create_topic(bs, &changelog, partitions, true);
    let started = Instant::now();
    preload(bs, &changelog, records)?;
    println!(
        "pre-loaded {records} changelog records into {changelog} ({partitions} partitions) in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let plain = plain_read(bs, &changelog, partitions, records)?;
    let (ready, metric) = runtime_restore(bs, &app, &input, partitions, threads, records)?;
    let plain_again = plain_read(bs, &changelog, partitions, records)?;
    let baseline = (plain + plain_again) / 2.0;
    let rate = records as f64 / ready;
    println!();
    println!("| restore of {records} records over {partitions} partitions | records/s | ratio to plain read |");
    println!("|---|---:|---:|");
    println!(
        "| plain rdkafka read, one consumer per partition, no store (baseline, mean of a run before and after) | {baseline:.0} | 1.00 |"
    );
    println!("| streamcore, {threads} thread(s): start to ready, empty RocksDB ({ready:.2}s) | {rate:.0} | {:.2} |", rate / baseline);
    println!(
        "| streamcore, {threads} thread(s): one restore (its metrics: records over the restores' summed seconds) | {metric:.0} | {:.2} |",
        metric / baseline
    );
    println!("(baseline runs: {plain:.0} and {plain_again:.0} records/s)");
    Ok(())
}

/// `n` distinct accounts' totals, as the keyed-state processor writes them.
fn preload(bs: &str, changelog: &str, n: u64) -> anyhow::Result<()> {
    let p = producer(bs);
    for i in 0..n {
        let key = format!("acct-{i:09}");
        let total = Total { count: i % 97 + 1, sum: Decimal::new(i as i64 * 7 + 1999, 2) };
        let value = serde_json::to_vec(&total)?;
        send_raw(&p, changelog, Some(key.as_bytes()), Some(&value)).with_context(|| format!("producing to {changelog}"))?;
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Records per second of assign-only consumers, one per partition on a thread of its own (as the runtime restores
/// each task on a thread of its own), reading all `n` records of `topic`.
fn plain_read(bs: &str, topic: &str, partitions: i32, n: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let readers: Vec<_> = (0..partitions)
        .map(|p| {
            let (bs, topic) = (bs.to_owned(), topic.to_owned());
            std::thread::spawn(move || read_partition(&bs, &topic, p))
        })
        .collect();
    let mut seen = 0;
    for r in readers {
        seen += r.join().map_err(|_| anyhow::anyhow!("a reader panicked"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(seen == n, "plain read saw {seen} of {n} records");
    println!("plain read: {n} records in {secs:.2}s");
    Ok(n as f64 / secs)
}

/// Every record of `topic`/`partition`, counted.
fn read_partition(bs: &str, topic: &str, partition: i32) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", unique("bench-restore-plain"))
        .set("enable.auto.commit", "false")
        .create()?;
    let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let (started, mut seen, mut reached) = (Instant::now(), 0u64, 0i64);
    while reached < high {
        match consumer.poll(Duration::from_millis(100)) {
            Some(msg) => {
                reached = msg?.offset() + 1;
                seen += 1;
            }
            None => anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "plain read of {topic}[{partition}] stalled at {seen}"),
        }
    }
    Ok(seen)
}

/// Seconds from start until the keyed-state runtime is ready with every task restored, and the restore rate its
/// metrics report.
fn runtime_restore(bs: &str, app: &str, input: &str, partitions: i32, threads: usize, n: u64) -> anyhow::Result<(f64, f64)> {
    let b = TopologyBuilder::new(app);
    b.source(input, Json::<Txn>::new(), |t: &Txn| EventTime::payload(&t.ts))
        .process("total", &[StoreSpec::persistent("totals")], || RunningTotal)
        .to("sink", &unique("bench-restore-out"), Json::new(), |r: &Record<Total>| r.key.clone());
    let mut cfg = StreamsConfig::new("bench", bs);
    let state = std::env::temp_dir().join(app);
    let _ = std::fs::remove_dir_all(&state);
    cfg.state_dir = state.clone();
    cfg.threads = threads;
    let registry = prometheus::Registry::new();
    let runtime = Runtime::new(b.build()?, cfg, &registry)?;
    let (status, shutdown) = (runtime.status(), runtime.shutdown_handle());
    let started = Instant::now();
    let thread = runtime.spawn()?;
    while !(status.is_ready() && status.tasks() == partitions as usize) {
        anyhow::ensure!(!thread.is_finished(), "the runtime stopped before it was ready");
        std::thread::sleep(crate::WATCH_INTERVAL);
    }
    let ready = started.elapsed().as_secs_f64();
    shutdown.trigger();
    thread.join().map_err(|_| anyhow::anyhow!("stream thread panicked"))?.context("runtime")?;
    let (restored, seconds) = (sum(&registry, "streamcore_restored_records_total"), sum(&registry, "streamcore_restore_seconds_total"));
    let _ = std::fs::remove_dir_all(state);
    anyhow::ensure!(restored as u64 == n, "restored {restored} of {n} changelog records");
    println!("streamcore restore: {n} records ready in {ready:.2}s ({seconds:.2}s restoring)");
    Ok((ready, restored / seconds))
}

/// A counter's value summed over its labels.
fn sum(registry: &prometheus::Registry, name: &str) -> f64 {
    registry.gather().iter().filter(|f| f.name() == name).flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value())).sum()
}
