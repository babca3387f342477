//! Writing generated records to Kafka, at a steady rate or as fast as the broker takes them, and making sure
//! the broker took every one (a refused record is an error, never a silent gap in the data).

use crate::Generated;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why producing stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The client failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The broker refused some records (a timestamp too far ahead, a topic that does not exist, ...).
    #[error("the broker refused {refused} of {sent} records")]
    Refused {
        /// How many.
        refused: u64,
        /// Out of.
        sent: u64,
    },
}

/// A record on its way: topic, key, value (`None`: a tombstone), record timestamp (`None`: now).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: Option<String>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Record timestamp, ms.
    pub timestamp: Option<i64>,
}

/// Counts refused records.
#[derive(Default)]
struct Refusals(AtomicU64);

impl ClientContext for Refusals {}

impl ProducerContext for Refusals {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produce `records` to `topic`; `rate` records per second (`None`: unlimited). Returns how many were written.
pub fn produce(
    bootstrap: &str,
    properties: &[(String, String)],
    topic: &str,
    records: impl Iterator<Item = Generated>,
    rate: Option<u32>,
) -> Result<u64, ProduceError> {
    let outgoing = records.map(|g| Outgoing { topic: topic.to_owned(), key: g.key, value: Some(g.value), timestamp: None });
    produce_all(bootstrap, properties, outgoing, rate)
}

/// Produce `records`, each to its own topic, in order (murmur2 on the key, like the Java client).
pub fn produce_all(
    bootstrap: &str,
    properties: &[(String, String)],
    records: impl Iterator<Item = Outgoing>,
    rate: Option<u32>,
) -> Result<u64, ProduceError> {
    let mut sender = Sender::new(bootstrap, properties)?;
    let started = Instant::now();
    for r in records {
        if let Some(rate) = rate.filter(|r| *r > 0) {
            let due = started + Duration::from_secs_f64(sender.sent as f64 / f64::from(rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                sender.producer.poll(wait);
            }
        }
        sender.send(&r)?;
    }
    sender.flush()?;
    Ok(sender.sent)
}

/// A producer that counts what it sent and what the broker refused.
pub struct Sender {
    producer: BaseProducer<Refusals>,
    sent: u64,
}

impl Sender {
    /// A producer for `bootstrap` with extra librdkafka `properties` (murmur2 on the key, like the Java client).
    pub fn new(bootstrap: &str, properties: &[(String, String)]) -> Result<Self, ProduceError> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap)
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("linger.ms", "10");
        for (k, v) in properties {
            cfg.set(k, v);
        }
        Ok(Sender { producer: cfg.create_with_context(Refusals::default())?, sent: 0 })
    }

    /// Queue `r`, waiting while the client's queue is full.
    pub fn send(&mut self, r: &Outgoing) -> Result<(), ProduceError> {
        let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(&r.topic);
        if let Some(k) = &r.key {
            record = record.key(k.as_str());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        self.producer.poll(Duration::ZERO);
        self.sent += 1;
        Ok(())
    }

    /// Wait until the broker has answered for everything sent; an error if it refused any of it.
    pub fn flush(&self) -> Result<(), ProduceError> {
        self.producer.flush(Duration::from_secs(120))?;
        match self.producer.context().0.load(Ordering::Relaxed) {
            0 => Ok(()),
            refused => Err(ProduceError::Refused { refused, sent: self.sent }),
        }
    }
}
