//! Rebalancing: how the consumer group's assignment becomes tasks, cooperatively.
//!
//! A task is partition p of *every* source topic (a stream and the table it joins meet in one task), but a consumer
//! group assigns topic-partitions, and librdkafka's assignors know nothing of tasks. Its `range` assignor keeps
//! partition numbers together but is *eager*: every rebalance revokes every partition of every member, so the whole
//! group stops (commits, closes its tasks, waits) while one instance joins or leaves. Its `cooperative-sticky`
//! assignor is *incremental* but balances each topic on its own, and with two members splits a task's topics
//! between them. Kafka Streams plugs an assignor of its own into the group protocol; librdkafka has no way to.
//!
//! So the group assigns only the **lead topic** (the first source): each stream thread's consumer subscribes to it
//! alone with `cooperative-sticky`, and the rebalance callback assigns partition p of every other source with lead
//! partition p, and unassigns them with it. The group balances what it knows, the lead topic's partitions, which
//! are exactly the tasks; the other sources' offsets are committed under the member's generation like the lead's
//! (the coordinator checks the member, not the partitions).
//!
//! What cooperative buys (invariant 5, docs/src/invariants.md): when an instance joins or leaves, only the tasks that
//! move are committed and closed (`Engine::revoke`); every other task keeps processing through the rebalance.
//! `streamcore_revoked_tasks_total` counts the tasks that moved away. A user who sets
//! `partition.assignment.strategy=range` gets the eager protocol: the callback then assigns and unassigns everything at
//! once, with the same tasks.
//!
//! The assignor is sticky to the *current* owners, not to local state: an instance that comes back after its
//! partitions moved gets whichever the group rebalances to it, reusing its local copy for those it held before
//! and restoring the others from their changelogs. A restart within the session timeout rebalances nothing at all
//! (static membership, see `Runtime::instance_id`).
//!
//! A *lost* assignment (the group dropped this member: its session timed out, or it was fenced) commits nothing,
//! because another member may already own the partitions: their tasks are closed as they are, and under
//! exactly-once the open transaction is aborted.

use super::engine::{partitions_of, Engine};
use crate::error::StreamError;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The assignor of the lead topic: incremental, so that a rebalance stops only the tasks that move.
pub(super) const ASSIGNMENT_STRATEGY: &str = "cooperative-sticky";

/// The source topic the group assigns; the other sources follow its partitions.
pub(super) fn lead_topic<'a>(sources: &[&'a str]) -> Result<&'a str, StreamError> {
    sources.first().copied().ok_or_else(|| StreamError::Config("the topology has no source topic".into()))
}

/// The consumer's context: where rebalances create and close tasks.
pub(super) struct StreamContext {
    pub(super) engine: Arc<Engine>,
}

impl ClientContext for StreamContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.engine.metrics.consumer_lag.with_label_values(&[topic, &p.to_string()]).set(part.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for StreamContext {
    /// Replaces rust-rdkafka's default callback, which would assign only the lead topic's partitions.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let partitions = partitions_of(tpl);
        let tasks = self.engine.partition_list(&partitions);
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(?partitions, cooperative, "partitions assigned");
                let assigned = if cooperative { consumer.incremental_assign(&tasks) } else { consumer.assign(&tasks) };
                if let Err(e) = self.start(consumer, assigned, &partitions) {
                    self.engine.fail(e);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                tracing::info!(?partitions, lost, "partitions revoked");
                if let Err(e) = self.stop(consumer, lost, &partitions) {
                    self.engine.fail(e);
                }
                // Unassigned even after a failure: librdkafka waits for it before the group can go on.
                let unassigned = if cooperative { consumer.incremental_unassign(&tasks) } else { consumer.unassign() };
                if let Err(e) = unassigned {
                    self.engine.fail(StreamError::Kafka { context: "unassigning revoked partitions".into(), source: e });
                }
            }
            other => tracing::warn!(error = ?other, "rebalance error"),
        }
    }
}

impl StreamContext {
    /// Start restoring the tasks of newly assigned partitions, once the consumer has them.
    fn start(&self, consumer: &BaseConsumer<Self>, assigned: KafkaResult<()>, partitions: &BTreeSet<i32>) -> Result<(), StreamError> {
        assigned.map_err(StreamError::kafka("assigning partitions"))?;
        // Only starts the restores: the callback returns at once, and the tasks run once restored.
        self.engine.assign(consumer, partitions, true)
    }

    /// Close the tasks of revoked partitions: committed when the group revoked them, as they are when it lost them.
    fn stop(&self, consumer: &BaseConsumer<Self>, lost: bool, partitions: &BTreeSet<i32>) -> Result<(), StreamError> {
        if lost {
            self.engine.lose(consumer, partitions)
        } else {
            self.engine.revoke(consumer, partitions)
        }
    }
}
