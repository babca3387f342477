//! The engine's Prometheus metrics. They register into the service's registry, so one `/metrics` page shows the
//! engine's and the service's metrics together.

use prometheus::{Counter, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Per-topic counters resolved once for the topics known at start, so the per-record path compares a few short
/// strings instead of hashing label values; any other topic falls back to the labelled lookup.
#[derive(Clone)]
pub(crate) struct TopicCounters {
    known: Vec<(String, IntCounter)>,
    all: IntCounterVec,
}

impl TopicCounters {
    pub(crate) fn new(all: &IntCounterVec, topics: impl IntoIterator<Item = String>) -> Self {
        let known = topics.into_iter().map(|t| {
            let c = all.with_label_values(&[&t]);
            (t, c)
        });
        TopicCounters { known: known.collect(), all: all.clone() }
    }

    pub(crate) fn inc(&self, topic: &str) {
        match self.known.iter().find(|(t, _)| t == topic) {
            Some((_, c)) => c.inc(),
            None => self.all.with_label_values(&[topic]).inc(),
        }
    }
}

/// Where a commit's time goes: one histogram per step of the commit protocol (`runtime::commit`), so a slow
/// commit says which wait made it slow. A commit stops its stream thread, and records arriving meanwhile wait for it:
/// this is the first place to look when the latency's tail is long.
#[derive(Clone)]
pub struct CommitPhases {
    /// Waiting for the outputs sent since the last commit to be acknowledged (at-least-once only).
    pub outputs_acked: Histogram,
    /// Sending the stores' coalesced changelog writes.
    pub changelogs_sent: Histogram,
    /// Waiting for those writes to be acknowledged.
    pub changelogs_acked: Histogram,
    /// Committing the input offsets (under exactly-once: adding them to the transaction and committing it).
    pub offsets_committed: Histogram,
    /// Applying each store's pending batch with its checkpoint.
    pub stores_applied: Histogram,
}

impl CommitPhases {
    fn new(all: &HistogramVec) -> Self {
        let phase = |p: &str| all.with_label_values(&[p]);
        CommitPhases {
            outputs_acked: phase("outputs_acked"),
            changelogs_sent: phase("changelogs_sent"),
            changelogs_acked: phase("changelogs_acked"),
            offsets_committed: phase("offsets_committed"),
            stores_applied: phase("stores_applied"),
        }
    }
}

/// Metrics of one runtime.
#[derive(Clone)]
pub struct Metrics {
    /// Records read, per topic.
    pub consumed: IntCounterVec,
    /// Records written (outputs, changelogs, dead letters), per topic.
    pub produced: IntCounterVec,
    /// Records sent to the dead-letter topic, per source topic.
    pub dead_lettered: IntCounterVec,
    /// Of those, records dead-lettered because the broker kept refusing their outputs, per source topic.
    pub refused: IntCounterVec,
    /// Records that arrived after their windows closed (written to `<service>.late`), per windowed operator.
    pub late: IntCounterVec,
    /// Processing attempts that asked to be retried, per source topic.
    pub retried: IntCounterVec,
    /// Time to process one record (the processors' work, not the broker round trip), sampled: one record in 64.
    pub process_latency: Histogram,
    /// Time to commit: flush, wait for acks, commit offsets, apply stores.
    pub commit_latency: Histogram,
    /// The same time, per step of the commit.
    pub commit_phases: CommitPhases,
    /// Changelog records replayed into stores, per store.
    pub restored: IntCounterVec,
    /// Seconds spent replaying changelogs (with `restored`: the restore rate).
    pub restore_seconds: Counter,
    /// Changelog records left to replay, per store and partition.
    pub restore_remaining: IntGaugeVec,
    /// Changelog records replayed into standby replicas, per store.
    pub standby_replayed: IntCounterVec,
    /// How far a standby replica is behind its changelog's end, in records, per store and partition (as of its
    /// last pass).
    pub standby_lag: IntGaugeVec,
    /// Standby replicas this instance keeps.
    pub standby_tasks: IntGauge,
    /// Consumer lag, per topic and partition, from librdkafka's statistics.
    pub consumer_lag: IntGaugeVec,
    /// Tasks (input partitions) this instance owns.
    pub assigned_tasks: IntGauge,
    /// Transactions aborted (exactly-once): their records are processed again from the committed offsets.
    pub aborted_transactions: IntCounter,
    /// Stream threads started again with new Kafka clients after theirs failed or were fenced.
    pub thread_restarts: IntCounter,
    /// Tasks closed because the group moved their partitions away (revoked, or lost with this member's session).
    pub revoked_tasks: IntCounter,
}

impl Metrics {
    /// Create and register the metrics of the runtime of `application_id` (a constant label on each, so several
    /// runtimes can share one registry).
    pub fn new(registry: &Registry, application_id: &str) -> Result<Self, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("application_id", application_id);
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(opts(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(opts(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| -> Result<Histogram, prometheus::Error> {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).const_label("application_id", application_id).buckets(buckets))?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let assigned_tasks = IntGauge::with_opts(opts("streamcore_assigned_tasks", "Tasks (input partitions) owned by this instance"))?;
        registry.register(Box::new(assigned_tasks.clone()))?;
        let single = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::with_opts(opts(name, help))?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Metrics {
            consumed: counter("streamcore_records_consumed_total", "Records read, per topic", &["topic"])?,
            produced: counter("streamcore_records_produced_total", "Records written, per topic", &["topic"])?,
            dead_lettered: counter(
                "streamcore_dead_lettered_total",
                "Records sent to the dead-letter topic, per source topic",
                &["topic"],
            )?,
            refused: counter(
                "streamcore_refused_records_total",
                "Records dead-lettered because the broker kept refusing their outputs, per source topic",
                &["topic"],
            )?,
            late: counter(
                "streamcore_late_records_total",
                "Records that arrived after their windows closed, per windowed operator",
                &["operator"],
            )?,
            retried: counter(
                "streamcore_retries_total",
                "Processing attempts retried after a transient failure, per source topic",
                &["topic"],
            )?,
            process_latency: histogram(
                "streamcore_process_latency_seconds",
                "Time to process one record",
                prometheus::exponential_buckets(1e-6, 4.0, 12)?,
            )?,
            commit_latency: histogram(
                "streamcore_commit_latency_seconds",
                "Time to commit",
                prometheus::exponential_buckets(1e-3, 2.0, 14)?,
            )?,
            commit_phases: {
                let all = HistogramVec::new(
                    HistogramOpts::new("streamcore_commit_phase_seconds", "Time to commit, per step of the commit")
                        .const_label("application_id", application_id)
                        .buckets(prometheus::exponential_buckets(1e-4, 2.0, 16)?),
                    &["phase"],
                )?;
                registry.register(Box::new(all.clone()))?;
                CommitPhases::new(&all)
            },
            restored: counter("streamcore_restored_records_total", "Changelog records replayed into stores", &["store"])?,
            restore_seconds: {
                let c = Counter::with_opts(opts("streamcore_restore_seconds_total", "Seconds spent replaying changelogs"))?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            restore_remaining: gauge_vec(
                "streamcore_restore_remaining_records",
                "Changelog records left to replay",
                &["store", "partition"],
            )?,
            standby_replayed: counter("streamcore_standby_records_total", "Changelog records replayed into standby replicas", &["store"])?,
            standby_lag: gauge_vec(
                "streamcore_standby_lag_records",
                "Changelog records a standby replica is behind, as of its last pass",
                &["store", "partition"],
            )?,
            standby_tasks: {
                let g = IntGauge::with_opts(opts("streamcore_standby_tasks", "Standby replicas this instance keeps"))?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            consumer_lag: gauge_vec("streamcore_consumer_lag", "Consumer lag per input partition", &["topic", "partition"])?,
            assigned_tasks,
            aborted_transactions: single("streamcore_aborted_transactions_total", "Transactions aborted and processed again")?,
            thread_restarts: single("streamcore_thread_restarts_total", "Stream threads restarted with new Kafka clients")?,
            revoked_tasks: single("streamcore_revoked_tasks_total", "Tasks closed because the group moved their partitions away")?,
        })
    }
}
