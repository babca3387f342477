//! Writing generated records to Kafka, at a steady rate or as fast as the broker takes them.

use crate::Generated;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

/// Produce `records` to `topic`; `rate` records per second (`None`: unlimited). Returns how many were written.
pub fn produce(
    bootstrap: &str,
    properties: &[(String, String)],
    topic: &str,
    records: impl Iterator<Item = Generated>,
    rate: Option<u32>,
) -> Result<u64, rdkafka::error::KafkaError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap).set("partitioner", "murmur2_random").set("enable.idempotence", "true").set("linger.ms", "10");
    for (k, v) in properties {
        cfg.set(k, v);
    }
    let producer: BaseProducer = cfg.create()?;
    let started = Instant::now();
    let mut sent = 0u64;
    for g in records {
        if let Some(rate) = rate.filter(|r| *r > 0) {
            let due = started + Duration::from_secs_f64(sent as f64 / f64::from(rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                producer.poll(wait);
            }
        }
        let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).payload(g.value.as_slice());
        if let Some(k) = &g.key {
            record = record.key(k.as_str());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => return Err(e),
            }
        }
        producer.poll(Duration::ZERO);
        sent += 1;
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(sent)
}
