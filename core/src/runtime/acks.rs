//! Waiting until the broker has answered for every record sent, each answer (a delivery report) served as it
//! arrives.
//!
//! Not rdkafka's `Producer::flush`: `BaseProducer::flush` waits in `poll` calls of up to 100 ms, and `poll` runs
//! to the end of its timeout even after it has served what it waited for. So every flush with a record in flight
//! took at least 100 ms, and a commit flushes twice under at-least-once (outputs, then changelogs) and once under
//! exactly-once: measured with `bench latency`, each at-least-once commit stalled its stream thread for about
//! 220 ms. Here each wait is a millisecond at most, and the loop ends as soon as librdkafka's out-queue is empty;
//! that queue counts records not yet acknowledged and delivery reports not yet served, so when it is empty every
//! report has reached the [`DeliveryTracker`].

use super::delivery::DeliveryTracker;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use std::time::{Duration, Instant};

/// How long one wait for a delivery report lasts at most.
const STEP: Duration = Duration::from_millis(1);

/// Serve delivery reports until none is outstanding; an error (as `flush` gives) after `timeout`.
pub(super) fn await_all(producer: &BaseProducer<DeliveryTracker>, timeout: Duration) -> KafkaResult<()> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(STEP);
    }
    Ok(())
}
