//! Processing guarantees: at-least-once, and exactly-once through Kafka transactions.
//!
//! **At least once** (the default): outputs and changelog writes are acknowledged before the input offsets are
//! committed, so nothing is lost; a crash between the two replays the records since the last commit, and their
//! outputs appear twice.
//!
//! **Exactly once** (`--guarantee exactly-once`): each stream thread has one *transactional* producer
//! (`transactional.id` = its static member id `<instance>-<thread>`, so a restarted thread fences its previous
//! incarnation). Between two commits every output, changelog write and dead or late record goes into one
//! transaction, and the commit adds the input offsets to it (`send_offsets_to_transaction` with the consumer's group
//! metadata, so a member the group has moved on from is refused: KIP-447 fencing) before committing it. Readers
//! with `isolation.level=read_committed` (every consumer of the runtime; librdkafka's default) see all of a
//! commit or none of it. The local stores apply a transaction's writes only once it committed (their pending
//! batch, invariant 3 (docs/src/invariants.md)), so after a crash they hold committed state only and restore from their
//! checkpoint; Kafka Streams instead wipes them and restores from zero.
//!
//! What a failure costs (invariant 4, docs/src/invariants.md), decided by `recovery`:
//! - *abortable* (a record not delivered, offsets refused because the group rebalanced): abort, drop every
//!   task's uncommitted state, rebuild the tasks from their stores and seek the consumer back to the committed
//!   offsets: the records are processed again into a fresh transaction;
//! - *fatal* (fenced by a newer incarnation, or an error the producer cannot leave): the thread closes its
//!   producer and consumer without committing and joins the group again with new ones (as it does under either
//!   guarantee when its Kafka clients fail: see `Runtime::run_thread`);
//! - *retriable* (a timeout, the outcome unknown): the commit is retried; if it keeps failing the thread starts
//!   over with a new producer, whose initialization aborts whatever the old one left open.
//!
//! Two waits keep a task that moves consistent. A new owner first fetches the committed offsets with
//! `require_stable` (librdkafka does under read_committed), which waits until the previous owner's open
//! transaction committed or aborted, and only then restores the changelog up to its last stable offset. The
//! transaction timeout is short ([`TRANSACTION_TIMEOUT`]) so that a frozen instance's transaction is aborted by
//! the coordinator soon after the group gave its partitions away.

use crate::error::StreamError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::time::Duration;

/// How long a transaction may stay open before the coordinator aborts it (`transaction.timeout.ms`).
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one transactional call (send offsets, commit, abort) may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a commit promises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Guarantee {
    /// Nothing lost; after a crash, outputs since the last commit are written again.
    #[default]
    AtLeastOnce,
    /// Outputs, changelog writes and input offsets commit atomically in a Kafka transaction.
    ExactlyOnce,
}

impl std::fmt::Display for Guarantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        })
    }
}

/// How a thread under exactly-once gets past an error without leaving the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Abort the transaction and process again from the committed offsets.
    Abort,
    /// Retry the same call.
    Retry,
    /// Not in place: the thread stops, and rejoins with new clients if the error came from them.
    Rejoin,
}

/// How to get past `e` under exactly-once.
pub(crate) fn recovery(e: &StreamError) -> Recovery {
    match e {
        // A record the broker refused: librdkafka has put the transaction in its abortable state.
        StreamError::Delivery(_) => Recovery::Abort,
        StreamError::Kafka { source: KafkaError::Transaction(t), .. } => {
            if t.is_fatal() {
                Recovery::Rejoin
            } else if t.txn_requires_abort() {
                Recovery::Abort
            } else if t.is_retriable() {
                Recovery::Retry
            } else {
                Recovery::Rejoin
            }
        }
        StreamError::Kafka { source: KafkaError::MessageProduction(code), .. } => match code {
            RDKafkaErrorCode::Fatal | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch => Recovery::Rejoin,
            // `_STATE`: the transaction is in an error state, waiting to be aborted.
            _ => Recovery::Abort,
        },
        StreamError::Kafka { source: KafkaError::Flush(_), .. } => Recovery::Abort,
        _ => Recovery::Rejoin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborts_for_undelivered_records_and_rejoins_when_fenced() {
        assert_eq!(recovery(&StreamError::Delivery("t [0]: timed out".into())), Recovery::Abort);
        let produce = |code| StreamError::Kafka { context: "producing".into(), source: KafkaError::MessageProduction(code) };
        assert_eq!(recovery(&produce(RDKafkaErrorCode::ProducerFenced)), Recovery::Rejoin);
        assert_eq!(recovery(&produce(RDKafkaErrorCode::State)), Recovery::Abort);
        assert_eq!(recovery(&StreamError::Config("bad".into())), Recovery::Rejoin);
    }
}
