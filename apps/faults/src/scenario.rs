//! One run: create the input, start the instances, drive the records in at a steady rate, inject the fault,
//! wait until everything is processed, then verify and measure.

use crate::cluster::{Broker, Cluster};
use crate::progress::Progress;
use crate::verify::{read_all, verdict, Verdict};
use crate::workload::Workload;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stock_ticker::topology::{BY_SYMBOL, DAILY_STATS_STORE, DAILY_STATS_TOPIC, TRADES_TOPIC};
use streamcore::runtime::Guarantee;
use streamcore::testkit::kafka::{create_topic, create_topic_with, unique, wait_caught_up};
use streamcore::topology::repartition_topic;

/// Input partitions: two instances own two tasks each.
const PARTITIONS: i32 = 4;

/// A fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// SIGKILL an instance and start it again, `kills` times, alternating instances.
    Sigkill,
    /// SIGSTOP an instance until the group has given its partitions to the other, then SIGCONT.
    Sigstop,
    /// SIGTERM the broker and start it again.
    BrokerTerm,
    /// SIGKILL the broker and start it again.
    BrokerKill,
    /// Stop an instance, delete its state directory, start it again.
    LostState,
    /// SIGKILL an instance and leave it down until the other has taken its tasks over (after the session
    /// timeout) and every output partition has new output; then start it again. With `--preload` its tasks have
    /// a large store, which the takeover restores in full, or, with standby replicas, only the tail of.
    Takeover,
    /// Write records the broker takes in and then refuses out: malformed trades stamped two days ahead (the input
    /// topic allows it), whose dead-letter copies keep the stamp and are refused by the dead-letter topic.
    Poison,
}

/// Poison records in the poison scenario, one for each of the first symbols.
const POISON: usize = PARTITIONS as usize;

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scenario::Sigkill => "SIGKILL instance",
            Scenario::Sigstop => "SIGSTOP instance",
            Scenario::BrokerTerm => "SIGTERM broker",
            Scenario::BrokerKill => "SIGKILL broker",
            Scenario::LostState => "state dir deleted",
            Scenario::Takeover => "SIGKILL, taken over",
            Scenario::Poison => "poison records",
        })
    }
}

/// What a run needs.
pub struct Options {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// The `stock-ticker` binary.
    pub ticker: PathBuf,
    /// The broker, for the broker scenarios.
    pub broker: Option<Broker>,
    /// Records to write.
    pub records: usize,
    /// Records per second.
    pub rate: u64,
    /// Distinct symbols.
    pub symbols: usize,
    /// SIGKILLs in the SIGKILL scenario.
    pub kills: usize,
    /// Standby replicas each instance keeps (`--standby-replicas`).
    pub standby_replicas: usize,
    /// Records written into the daily-statistics store's changelog before the start (keys no trade has): a large
    /// store for every task of the daily stage to restore.
    pub preload: u64,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    /// The fault.
    pub scenario: Scenario,
    /// The guarantee the instances ran with.
    pub guarantee: Guarantee,
    /// Valid trades, that is daily-statistics updates expected.
    pub records: u64,
    /// Malformed records injected.
    pub malformed: usize,
    /// Late trades injected.
    pub late: usize,
    /// What the verifier found.
    pub verdict: Verdict,
    /// The longest time from a fault until every output partition had new committed output.
    pub recovery: Duration,
    /// Changelog records replayed by the instances running at the end, and the seconds it took them.
    pub restored: f64,
    /// Seconds those restores took.
    pub restore_seconds: f64,
    /// Transactions aborted and stream threads restarted (exactly-once) by the instances running at the end.
    pub aborts: f64,
    /// Instances that exited on their own and were started again.
    pub exits: usize,
    /// Standby replicas each instance kept.
    pub standby_replicas: usize,
}

/// Counts what the broker did not take.
struct Failures(Arc<AtomicU64>);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Writes `workload` at `rate` records per second; `sent` counts what was handed to the producer.
fn drive(bootstrap: &str, topic: &str, workload: &Workload, rate: u64, sent: &AtomicUsize) -> anyhow::Result<()> {
    let failed = Arc::new(AtomicU64::new(0));
    // Idempotent, so the driver's own retries while the broker is down add no duplicates to the input.
    let producer: BaseProducer<Failures> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "300000")
        .create_with_context(Failures(failed.clone()))?;
    let started = Instant::now();
    for (i, (key, value)) in workload.records.iter().enumerate() {
        // Pace: record i is due at i / rate seconds.
        let due = Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            producer.poll(wait);
        }
        let mut record = BaseRecord::<String, Vec<u8>>::to(topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        while let Err((e, back)) = producer.send(record) {
            anyhow::ensure!(
                matches!(e, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)),
                "producing: {e}"
            );
            record = back;
            producer.poll(Duration::from_millis(50));
        }
        sent.store(i + 1, Ordering::SeqCst);
    }
    producer.flush(Duration::from_secs(300))?;
    let failed = failed.load(Ordering::SeqCst);
    anyhow::ensure!(failed == 0, "the broker refused {failed} input records");
    Ok(())
}

/// Writes `n` records into the daily-statistics store's changelog of application `app`, spread over its
/// partitions, under keys no symbol has (`~preload-<i>`: no query's range reaches them).
fn preload(bootstrap: &str, app: &str, n: u64) -> anyhow::Result<()> {
    let changelog = format!("{app}-{DAILY_STATS_STORE}-changelog");
    create_topic(bootstrap, &changelog, PARTITIONS, true);
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("linger.ms", "20").create()?;
    let value = format!(r#"{{"preloaded":"{}"}}"#, "x".repeat(80));
    for i in 0..n {
        let key = format!("~preload-{i}");
        let mut record = BaseRecord::<String, String>::to(&changelog).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) => {
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
                Err((e, _)) => anyhow::bail!("preloading {changelog}: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Writes [`POISON`] malformed trades stamped two days ahead of now, one per symbol from the first.
fn poison(bootstrap: &str, topic: &str, symbols: usize) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("partitioner", "murmur2_random").create()?;
    let ahead = chrono::Utc::now().timestamp_millis() + 2 * 86_400_000;
    for i in 0..POISON {
        let symbol = format!("S{:03}", i % symbols.max(1));
        let value = format!(r#"{{"symbol":"{symbol}","price":"#);
        let record = BaseRecord::<String, String>::to(topic).key(&symbol).payload(&value).timestamp(ahead);
        producer.send(record).map_err(|(e, _)| anyhow::anyhow!("producing a poison record: {e}"))?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// Waits until `sent` reaches `n`, or the driver finished.
fn wait_sent(sent: &AtomicUsize, n: usize, driver: &std::thread::JoinHandle<anyhow::Result<()>>) {
    while sent.load(Ordering::SeqCst) < n && !driver.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `scenario` under `guarantee`.
pub fn run(scenario: Scenario, guarantee: Guarantee, opts: &Options) -> anyhow::Result<Row> {
    let bs = opts.bootstrap.clone();
    let prefix = format!("{}.", unique("faults"));
    let app = unique("faults-ticker");
    let input = format!("{prefix}{TRADES_TOPIC}");
    if scenario == Scenario::Poison {
        create_topic_with(&bs, &input, PARTITIONS, &[("message.timestamp.after.max.ms", &i64::MAX.to_string())]);
    } else {
        create_topic(&bs, &input, PARTITIONS, false);
    }
    if opts.preload > 0 {
        preload(&bs, &app, opts.preload)?;
    }
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::new(&opts.ticker, &bs, &app, &prefix, guarantee, dir.path(), 2, opts.standby_replicas);
    cluster.start(0);
    cluster.start(1);
    let progress = Progress::tail(&bs, &format!("{prefix}{DAILY_STATS_TOPIC}"))?;

    let workload = Arc::new(Workload::new(opts.records, opts.symbols));
    let sent = Arc::new(AtomicUsize::new(0));
    let driver = {
        let (bs, input, workload, sent, rate) = (bs.clone(), input.clone(), workload.clone(), sent.clone(), opts.rate);
        std::thread::spawn(move || drive(&bs, &input, &workload, rate, &sent))
    };
    let timeout = Duration::from_secs(180);
    let mut recovery = Duration::ZERO;
    let mut note = |d: Duration| recovery = recovery.max(d);
    // The takeover scenario's restore: (records, seconds) the survivor replayed.
    let mut taken_over = None;
    match scenario {
        Scenario::Sigkill => {
            for k in 0..opts.kills {
                wait_sent(&sent, opts.records * (k + 1) / (opts.kills + 2), &driver);
                let t0 = Instant::now();
                cluster.kill(k % 2);
                cluster.start(k % 2);
                note(progress.recovered_since(t0, &mut cluster, timeout)?);
            }
        }
        Scenario::Sigstop => {
            wait_sent(&sent, opts.records / 4, &driver);
            let t0 = Instant::now();
            cluster.signal(0, "STOP");
            // Frozen past the session timeout: the other instance takes every partition over.
            let recovered = progress.recovered_since(t0, &mut cluster, timeout);
            cluster.signal(0, "CONT");
            note(recovered?);
        }
        Scenario::BrokerTerm | Scenario::BrokerKill => {
            let broker = opts.broker.as_ref().ok_or_else(|| anyhow::anyhow!("{scenario} needs --kafka-run-dir"))?;
            wait_sent(&sent, opts.records / 4, &driver);
            let t0 = Instant::now();
            broker.run(if scenario == Scenario::BrokerTerm { "term" } else { "kill" })?;
            broker.run("start")?;
            note(progress.recovered_since(t0, &mut cluster, timeout)?);
        }
        Scenario::LostState => {
            wait_sent(&sent, opts.records / 4, &driver);
            let t0 = Instant::now();
            cluster.terminate(0);
            cluster.delete_state(0)?;
            cluster.start(0);
            note(progress.recovered_since(t0, &mut cluster, timeout)?);
        }
        Scenario::Takeover => {
            wait_sent(&sent, opts.records / 4, &driver);
            // What the survivor replays to take the tasks over.
            let replayed =
                |c: &Cluster| (c.metric_of(1, "streamcore_restored_records_total"), c.metric_of(1, "streamcore_restore_seconds_total"));
            let before = replayed(&cluster);
            let t0 = Instant::now();
            cluster.kill(0);
            note(progress.recovered_since(t0, &mut cluster, timeout)?);
            let after = replayed(&cluster);
            taken_over = Some((after.0 - before.0, after.1 - before.1));
            cluster.start(0);
        }
        Scenario::Poison => {
            wait_sent(&sent, opts.records / 4, &driver);
            let t0 = Instant::now();
            poison(&bs, &input, opts.symbols)?;
            note(progress.recovered_since(t0, &mut cluster, timeout)?);
        }
    }
    driver.join().map_err(|_| anyhow::anyhow!("the driver panicked"))??;

    // Everything written is processed and committed: the trades and the repartition topic by their tasks.
    let repartition = repartition_topic(&app, BY_SYMBOL);
    let deadline = Instant::now() + Duration::from_secs(300);
    while ![&input, &repartition].iter().all(|t| wait_caught_up(&bs, &app, t, Duration::from_secs(5))) {
        anyhow::ensure!(Instant::now() < deadline, "{app} did not catch up within 5 minutes");
        cluster.restart_exited();
    }

    let updates = read_all(&bs, &format!("{prefix}{DAILY_STATS_TOPIC}"))?;
    let dead = read_all(&bs, &format!("{prefix}stock-ticker.dlq"))?;
    let dead_letters = dead.iter().filter(|r| r.headers.get("source.topic") == Some(&input)).count() as u64;
    let late = read_all(&bs, &format!("{prefix}stock-ticker.late"))?;
    let late = late
        .iter()
        .filter(|r| {
            r.headers.get("source.topic") == Some(&repartition) && r.headers.get("late.operator").map(String::as_str) == Some("daily")
        })
        .count() as u64;
    let verdict = verdict(&workload, &updates, dead_letters, late)?;
    let injected_poison = if scenario == Scenario::Poison { POISON } else { 0 };
    let refused = dead.iter().filter(|r| r.headers.get("error").is_some_and(|e| e.contains("the broker refused"))).count();
    anyhow::ensure!(
        refused == injected_poison || (guarantee == Guarantee::AtLeastOnce && refused > injected_poison && injected_poison > 0),
        "{refused} dead letters say the broker refused them, for {injected_poison} poison records"
    );
    let row = Row {
        scenario,
        guarantee,
        records: workload.updates(),
        malformed: workload.malformed + injected_poison,
        late: workload.late,
        verdict,
        recovery,
        restored: taken_over.map_or_else(|| cluster.metric("streamcore_restored_records_total"), |t| t.0),
        restore_seconds: taken_over.map_or_else(|| cluster.metric("streamcore_restore_seconds_total"), |t| t.1),
        aborts: cluster.metric("streamcore_aborted_transactions_total") + cluster.metric("streamcore_thread_restarts_total"),
        exits: cluster.exits(),
        standby_replicas: opts.standby_replicas,
    };
    for i in 0..cluster.instances.len() {
        cluster.terminate(i);
    }
    Ok(row)
}
