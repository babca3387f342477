//! What a stream thread's poll loop and its rebalance callbacks share: the [`Engine`], its tasks and its clients.
//!
//! The engine's behaviour lives in the files named after each role: `task_executor` (records through tasks),
//! `record_collector` (outputs to the producer), `commit` (the commit protocol), `task_manager` (tasks created and
//! closed on rebalances), `restore` (stores brought up to date) and `ownership` (claims for query routing).

use super::copartition::Partitions;
use super::delivery::DeliveryTracker;
use super::ownership::Advertised;
use super::rebalance::StreamContext;
use super::restore::Restorer;
use super::standby::Standbys;
use super::state_updater::StateUpdater;
use super::{global, refusal, status, StreamsConfig};
use crate::error::StreamError;
use crate::metrics::{Metrics, TopicCounters};
use crate::query::StoreRegistry;
use crate::record::{InputRecord, SourcePosition};
use crate::task::Task;
use crate::task_id::TaskId;
use crate::topology::Topology;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::BaseProducer;
use rdkafka::TopicPartitionList;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// A task and what the runtime tracks around it.
pub(super) struct Slot {
    pub(super) task: Task,
    /// A record that failed transiently, and when to try it again.
    pub(super) pending: Option<Pending>,
    /// Records polled behind a pending one, in order.
    pub(super) backlog: VecDeque<InputRecord>,
    pub(super) paused: bool,
}

pub(super) struct Pending {
    pub(super) input: InputRecord,
    pub(super) attempts: u32,
    pub(super) retry_at: Instant,
}

#[derive(Default)]
pub(super) struct EngineState {
    pub(super) tasks: BTreeMap<TaskId, Slot>,
    pub(super) committed: HashMap<(String, i32), i64>,
    /// The tasks being restored, not processing yet (see `state_updater`).
    pub(super) restoring: StateUpdater,
    pub(super) fatal: Option<StreamError>,
}

/// What the poll loop and the rebalance callbacks share.
pub(super) struct Engine {
    pub(super) config: StreamsConfig,
    /// Each sub-topology's partition count.
    pub(super) partitions: Partitions,
    pub(super) topology: Arc<Topology>,
    pub(super) metrics: Metrics,
    pub(super) consumed: TopicCounters,
    pub(super) produced: TopicCounters,
    pub(super) status: status::ThreadHandle,
    pub(super) stores: StoreRegistry,
    /// The tasks every thread of this instance owns.
    pub(super) owned: Arc<Mutex<BTreeSet<TaskId>>>,
    /// Where this thread publishes its tasks, when the instance advertises itself.
    pub(super) advertised: Option<Advertised>,
    pub(super) producer: BaseProducer<DeliveryTracker>,
    /// What restores of this thread's new tasks need.
    pub(super) restorer: Restorer,
    /// The instance's standby replicas, promoted when their tasks are assigned here.
    pub(super) standbys: Standbys,
    pub(super) globals: Arc<global::GlobalTables>,
    pub(super) late_topic: String,
    /// Under exactly-once the producer is transactional and a commit is a transaction's commit.
    pub(super) exactly_once: bool,
    /// Inputs whose outputs the broker refused (see [`refusal`]).
    pub(super) refusals: Arc<refusal::Refusals>,
    /// The inputs processed since the last commit; an output's delivery opaque is its input's index here.
    pub(super) origins: Mutex<Vec<SourcePosition>>,
    /// A refusal was pinned on an input: go back to the last commit, also under at-least-once.
    pub(super) rewind_requested: AtomicBool,
    /// A processor flushed: under exactly-once, commit right after the record in hand (see
    /// `record_collector::ProducerSink`).
    pub(super) commit_requested: AtomicBool,
    /// The thread failed and dropped its tasks: nothing may be committed any more.
    pub(super) abandoned: AtomicBool,
    /// The thread is leaving the group (`stream_thread::leave_group`): a task assigned now is not started.
    pub(super) leaving: AtomicBool,
    pub(super) state: Mutex<EngineState>,
}

pub(super) type GroupConsumer = BaseConsumer<StreamContext>;

impl Engine {
    pub(super) fn lock(&self) -> MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn take_fatal(&self) -> Option<StreamError> {
        self.lock().fatal.take()
    }

    /// Whether the stream thread must stop taking records and do its own work first: a commit was asked for (a
    /// flush under exactly-once), a rewind (the broker refused an output), or a rebalance callback failed.
    pub(super) fn must_stop_reading(&self) -> bool {
        self.commit_requested.load(Ordering::SeqCst) || self.rewind_requested.load(Ordering::SeqCst) || self.lock().fatal.is_some()
    }

    pub(super) fn fail(&self, e: StreamError) {
        tracing::error!(error = %e, "fatal error in a rebalance callback");
        self.lock().fatal.get_or_insert(e);
    }

    /// What `tasks` read: for task `s_p`, partition p of each source topic of sub-topology s.
    pub(super) fn partition_list<'a>(&self, tasks: impl IntoIterator<Item = &'a TaskId>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for id in tasks {
            for t in self.topology.sources_of(id.subtopology) {
                tpl.add_partition(t, id.partition);
            }
        }
        tpl
    }

    /// The tasks that read the partitions of `tpl`.
    pub(super) fn tasks_of(&self, tpl: &TopicPartitionList) -> BTreeSet<TaskId> {
        tpl.elements().iter().filter_map(|e| self.topology.subtopology_of(e.topic()).map(|st| TaskId::new(st, e.partition()))).collect()
    }

    /// The task that reads `topic`'s partition `partition`.
    pub(super) fn task_of(&self, topic: &str, partition: i32) -> Option<TaskId> {
        self.topology.subtopology_of(topic).map(|st| TaskId::new(st, partition))
    }

    /// This thread's tasks, running or restoring.
    pub(super) fn owned_here(&self) -> BTreeSet<TaskId> {
        let state = self.lock();
        state.tasks.keys().copied().chain(state.restoring.tasks()).collect()
    }
}
