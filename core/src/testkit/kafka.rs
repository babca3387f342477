//! Helpers for integration tests and benchmarks against a *real* broker (the one `scripts/kafka` starts):
//! topic creation, producing, reading topics to a count or to their end, and waiting for a consumer group to catch
//! up.
//!
//! There is no fallback: without `KAFKA_BOOTSTRAP` the helpers panic with instructions, so a test run without a
//! broker fails loudly instead of skipping.

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The real broker's address, from `KAFKA_BOOTSTRAP`. Panics (fails the test) when it is missing.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!("KAFKA_BOOTSTRAP is not set: run the tests with scripts/test, which starts a real Kafka broker and SMTP server")
    })
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Create a topic (compacted or not) and wait until its metadata is visible.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, compacted: bool) {
    create_topic_with(bootstrap, name, partitions, if compacted { &[("cleanup.policy", "compact")] } else { &[] });
}

/// Create a topic with these topic-level settings and wait until its metadata is visible.
pub fn create_topic_with(bootstrap: &str, name: &str, partitions: i32, config: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let topic = config.iter().fold(NewTopic::new(name, partitions, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let res = rt
        .block_on(admin.create_topics(&[topic], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))))
        .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    let probe: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(md) = probe.fetch_metadata(Some(name), Duration::from_secs(5)) {
            if md.topics().iter().any(|t| t.error().is_none() && t.partitions().len() == partitions as usize) {
                return;
            }
        }
    }
    panic!("topic {name} did not appear");
}

/// Grow `topic` to `partitions` partitions, as an operator's `kafka-topics --alter` would.
pub fn add_partitions(bootstrap: &str, topic: &str, partitions: usize) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let res = rt
        .block_on(admin.create_partitions(
            &[NewPartitions::new(topic, partitions)],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create_partitions");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("adding partitions to {t}: {e}"));
    }
}

/// Delete the records of `topic`/`partition` below `before` (`Offset::End`: all of them), as retention or an
/// operator's `kafka-delete-records` would; returns the partition's new low watermark.
pub fn delete_records(bootstrap: &str, topic: &str, partition: i32, before: Offset) -> i64 {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, before).expect("offset");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let done = rt
        .block_on(admin.delete_records(&tpl, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))))
        .expect("delete_records");
    let e = done.elements_for_topic(topic).into_iter().next().expect("the partition's result");
    e.error().unwrap_or_else(|err| panic!("deleting records of {topic}[{partition}]: {err}"));
    match e.offset() {
        Offset::Offset(low) => low,
        other => panic!("deleting records of {topic}[{partition}]: no low watermark ({other:?})"),
    }
}

/// A plain producer with the partitioner the runtime uses (murmur2, like the Java client).
pub fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produce `(key, value)` records and wait until all are acknowledged.
pub fn produce(bootstrap: &str, topic: &str, records: &[(Option<String>, Vec<u8>)]) {
    let p = producer(bootstrap);
    for (k, v) in records {
        send_raw(&p, topic, k.as_deref().map(str::as_bytes), Some(v)).unwrap_or_else(|e| panic!("producing to {topic}: {e}"));
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

/// Hand one record (any bytes, or none, as key and value) to `p`, waiting while its queue is full.
pub fn send_raw(p: &BaseProducer, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), KafkaError> {
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(v) = value {
        rec = rec.payload(v);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key as UTF-8 (lossy).
    pub key: Option<String>,
    /// Value bytes (`None`: tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers, values as UTF-8 (lossy).
    pub headers: BTreeMap<String, String>,
}

impl Consumed {
    /// The value as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.value.as_deref().unwrap_or(b"null")).unwrap_or(serde_json::Value::Null)
    }
}

/// The context of the helpers' consumers that read to a partition's end. rdkafka hands each of a consumer's error
/// events, a partition's end among them, to its context's `error` as well as to `poll`'s caller, and the default
/// context logs every one at ERROR level: a benchmark waiting for a group to catch up printed "Global error:
/// PartitionEOF" twice a second, which read as a failure. The end is what these consumers wait for; every other
/// error is logged as before.
struct ReadsToEnd;

impl ClientContext for ReadsToEnd {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for ReadsToEnd {}

/// Every committed record of `topic` (read_committed), from the beginning to the end of each partition as it is
/// when each partition is reached: the whole topic, once its writer has caught up, without waiting out a timeout.
/// Fails if the end is not reached within `timeout`.
pub fn read_to_end(bootstrap: &str, topic: &str, timeout: Duration) -> Result<Vec<Consumed>, KafkaError> {
    let c: BaseConsumer<ReadsToEnd> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create_with_context(ReadsToEnd)?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut at_end = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while at_end.len() < partitions.len() {
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut));
        }
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                out.push(consumed(&m));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(out)
}

fn consumed(m: &rdkafka::message::BorrowedMessage<'_>) -> Consumed {
    let headers = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
        .unwrap_or_default();
    Consumed {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Read `topic` from the beginning (read_committed) until `n` records arrived or `timeout` passed; returns what
/// arrived (the caller asserts on the count, so a shortfall fails with the records in the message).
pub fn read_topic(bootstrap: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Consumed> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(consumed(&m));
        }
    }
    out
}

/// Wait until consumer group `group` has committed, on every partition of `topic`, the end offset. True if it did.
///
/// A topic written in transactions ends with a commit marker, an offset that holds no record: a group that read
/// everything has committed the marker's offset, one less than the end. So a committed offset short of the end
/// still counts when no committed record lies between the two.
pub fn wait_caught_up(bootstrap: &str, group: &str, topic: &str, timeout: Duration) -> bool {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().expect("consumer");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) else { continue };
        let Some(t) = md.topics().first() else { continue };
        let mut tpl = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
            if let Ok((_, high)) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(5)) {
                ends.insert(p.id(), high);
            }
        }
        if let Ok(committed) = c.committed_offsets(tpl, Duration::from_secs(5)) {
            let done = committed.elements().iter().all(|e| {
                let end = ends.get(&e.partition()).copied().unwrap_or(i64::MAX);
                let from = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                from >= end || !has_record_from(bootstrap, topic, e.partition(), from)
            });
            if done && ends.len() == t.partitions().len() {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Whether `topic[partition]` holds a committed record at `from` or later (read_committed, to the partition's end).
fn has_record_from(bootstrap: &str, topic: &str, partition: i32, from: i64) -> bool {
    let c: BaseConsumer<ReadsToEnd> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("probe"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create_with_context(ReadsToEnd)
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    if tpl.add_partition_offset(topic, partition, Offset::Offset(from)).is_err() || c.assign(&tpl).is_err() {
        return true;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => return true,
            Some(Err(KafkaError::PartitionEOF(_))) => return false,
            _ => {}
        }
    }
    true
}
