//! Rebalancing: how the consumer group's assignment becomes tasks, cooperatively.
//!
//! A task is one sub-topology's work on partition p of *every* source topic of that sub-topology (a stream and the
//! table it joins meet in one task), but a consumer group assigns topic-partitions, and librdkafka's assignors know
//! nothing of tasks. Its `range` assignor keeps
//! partition numbers together but is *eager*: every rebalance revokes every partition of every member, so the whole
//! group stops (commits, closes its tasks, waits) while one instance joins or leaves. Its `cooperative-sticky`
//! assignor is *incremental* but balances each topic on its own, and with two members splits a task's topics
//! between them. Kafka Streams plugs an assignor of its own into the group protocol; librdkafka has no way to.
//!
//! So the group assigns only each sub-topology's **lead topic** (its first source): each stream thread's consumer
//! subscribes to the lead topics alone with `cooperative-sticky`, and the rebalance callback assigns partition p of
//! every other source of the same sub-topology with lead partition p, and unassigns them with it. The group
//! balances what it knows, the lead topics' partitions, which are exactly the tasks (lead partition p of
//! sub-topology s is task `s_p`); the other sources' offsets are committed under the member's generation like the
//! lead's (the coordinator checks the member, not the partitions). Two sub-topologies' tasks of the same partition
//! are two topic-partitions to the group, so they may go to different threads or instances: they share nothing.
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

use super::engine::Engine;
use crate::error::StreamError;
use crate::task_id::TaskId;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The assignor of the lead topics: incremental, so that a rebalance stops only the tasks that move.
pub(super) const ASSIGNMENT_STRATEGY: &str = "cooperative-sticky";

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
    /// Replaces rust-rdkafka's default callback, which would assign only the lead topics' partitions.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let ids = self.engine.tasks_of(tpl);
        let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let tasks = self.engine.partition_list(&ids);
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(tasks = ?names, cooperative, "tasks assigned");
                let assigned = if cooperative { consumer.incremental_assign(&tasks) } else { consumer.assign(&tasks) };
                if let Err(e) = self.start(consumer, assigned, &ids) {
                    self.engine.fail(e);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                tracing::info!(tasks = ?names, lost, "tasks revoked");
                if let Err(e) = self.stop(consumer, lost, &ids) {
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
    /// Start restoring newly assigned tasks, once the consumer has their partitions.
    fn start(&self, consumer: &BaseConsumer<Self>, assigned: KafkaResult<()>, tasks: &BTreeSet<TaskId>) -> Result<(), StreamError> {
        assigned.map_err(StreamError::kafka("assigning partitions"))?;
        // Only starts the restores: the callback returns at once, and the tasks run once restored.
        self.engine.assign(consumer, tasks)
    }

    /// Close revoked tasks: committed when the group revoked them, as they are when it lost them.
    fn stop(&self, consumer: &BaseConsumer<Self>, lost: bool, tasks: &BTreeSet<TaskId>) -> Result<(), StreamError> {
        if lost {
            self.engine.lose(consumer, tasks)
        } else {
            self.engine.revoke(consumer, tasks)
        }
    }
}
