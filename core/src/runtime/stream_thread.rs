//! A stream thread: its clients, its poll loop, and its restarts.
//!
//! Each thread owns a consumer in the group, a producer (transactional under exactly-once) and the [`Engine`] its
//! rebalance callbacks and its loop share. The loop takes up to `POLL_BATCH` fetched records at a time, each to its
//! task (`task_executor`), keeps the producer's delivery reports flowing, retries what waits on a backoff,
//! punctuates, and commits on the commit interval (`commit`). When the Kafka clients fail, the thread starts over
//! with new ones (`run_thread`).

use super::delivery::DeliveryTracker;
use super::engine::{Engine, EngineState};
use super::guarantee::{CALL_TIMEOUT, TRANSACTION_TIMEOUT};
use super::ownership::Advertised;
use super::rebalance::{self, StreamContext};
use super::rejoin::RejoinPause;
use super::{global, topics, topics_to_create, Guarantee, Runtime};
use crate::error::StreamError;
use crate::metrics::TopicCounters;
use crate::record::{InputRecord, SourcePosition};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often tasks get their processing-time hook ([`crate::Processor::punctuate`]).
const PUNCTUATION_INTERVAL: Duration = Duration::from_secs(1);

/// How often thread 0 checks that the sources kept their partition count.
const PARTITION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Records a step takes from the consumer's queue without waiting, after the first, before the thread's own work
/// (finished restores, delivery reports, retries, punctuation, the commit's clock) runs again. Doing that work
/// after every record read the clock several times and took as many locks per record: about a tenth of the stream
/// thread's time in the stock ticker's profile. A commit or punctuation is late by at most one such batch.
const POLL_BATCH: usize = 256;

/// Bounds what librdkafka fetches ahead of the thread. Its defaults (100,000 records per partition, up to 64 MiB)
/// suit a consumer that only reads; a stream thread holds state as well, and on a backlog that queue was the largest
/// part of its peak memory that the state budget does not govern (the stock ticker's benchmark on a million
/// pre-loaded trades, one thread: 200 MiB with the defaults, 179 MiB with these; the README's benchmark section has
/// every setup). 10,000 records per partition is still seconds of work. A queue that small is full often, and
/// librdkafka waits `fetch.queue.backoff.ms` (one second by default) before fetching again for a partition whose
/// queue was full: that left the thread idle half of the time, so it waits 50 ms. `--kafka-property` overrides each.
fn bound_read_ahead(consumer: &mut ClientConfig) {
    consumer.set("queued.min.messages", "10000").set("queued.max.messages.kbytes", "16384").set("fetch.queue.backoff.ms", "50");
}

impl Runtime {
    /// Run stream thread `index`. When the Kafka clients fail (a consumer fenced after a broker restart, commits
    /// refused, a producer fenced or in a fatal state, records undeliverable), the thread drops its tasks without
    /// committing, closes its clients and joins the group again with new ones: processing resumes from the committed
    /// offsets and the checkpointed stores, as after a crash but without one, for as long as the failures last
    /// (see [`rejoin`](super::rejoin)). Store, configuration and processing errors stop the instance.
    pub(super) fn run_thread(&self, index: usize, globals: &Arc<global::GlobalTables>, instance: &str) -> Result<(), StreamError> {
        let mut pauses = RejoinPause::new();
        loop {
            let started = Instant::now();
            match self.run_thread_once(index, globals, instance) {
                Err(e @ (StreamError::Kafka { .. } | StreamError::Delivery(_))) if !self.shutdown.is_triggered() => {
                    let pause = pauses.after_failure(started.elapsed());
                    tracing::warn!(error = %e, thread = index, pause_ms = pause.as_millis() as u64, "Kafka client failed; rejoining with new clients");
                    self.metrics.thread_restarts.inc();
                    if super::wait(pause, &|| self.shutdown.is_triggered()) {
                        return Ok(());
                    }
                }
                other => return other,
            }
        }
    }

    pub(super) fn run_thread_once(&self, index: usize, globals: &Arc<global::GlobalTables>, instance: &str) -> Result<(), StreamError> {
        let cfg = &self.config;
        let exactly_once = cfg.guarantee == Guarantee::ExactlyOnce;
        let member = format!("{instance}-{index}");
        let sources: Vec<&str> = self.topology.source_topics();
        let app = self.topology.name();

        let changelogs: Vec<String> = self.topology.stores().iter().map(|s| s.changelog_topic(app)).collect();
        let mut producer_cfg = cfg.producer_config();
        if exactly_once {
            producer_cfg.set("transactional.id", &member).set("transaction.timeout.ms", TRANSACTION_TIMEOUT.as_millis().to_string());
        }
        let mut consumer_cfg = ClientConfig::new();
        consumer_cfg
            .set("bootstrap.servers", &cfg.bootstrap)
            .set("group.id", app)
            .set("group.instance.id", &member)
            // librdkafka's default, stated: a transaction's records are seen once it committed, never if it aborted.
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // The group assigns the lead topics' partitions incrementally; the other sources follow (see `rebalance`).
            .set("partition.assignment.strategy", rebalance::ASSIGNMENT_STRATEGY)
            .set("session.timeout.ms", "10000")
            .set("statistics.interval.ms", "5000");
        bound_read_ahead(&mut consumer_cfg);
        for (k, v) in &cfg.kafka_properties {
            consumer_cfg.set(k, v);
        }
        let producer: BaseProducer<DeliveryTracker> =
            producer_cfg.create_with_context(DeliveryTracker::new(changelogs)).map_err(StreamError::kafka("creating the producer"))?;
        if exactly_once {
            // Fences the previous incarnation of this transactional id and aborts what it left open.
            producer.init_transactions(CALL_TIMEOUT).map_err(StreamError::kafka("initializing transactions"))?;
            producer.begin_transaction().map_err(StreamError::kafka("beginning a transaction"))?;
        }
        let restorer = self.restorer(exactly_once);
        let outputs = topics_to_create(&self.topology, cfg).into_iter().map(|t| t.name);
        let partitions = self
            .partitions
            .get()
            .cloned()
            .ok_or_else(|| StreamError::Config("stream thread started before the topics were checked".into()))?;
        let engine = Arc::new(Engine {
            partitions: partitions.clone(),
            config: cfg.clone(),
            topology: self.topology.clone(),
            metrics: self.metrics.clone(),
            consumed: TopicCounters::new(&self.metrics.consumed, sources.iter().map(|s| s.to_string())),
            produced: TopicCounters::new(&self.metrics.produced, outputs),
            status: self.status.thread(index),
            stores: self.stores.clone(),
            owned: self.owned.clone(),
            advertised: cfg.advertised_url.clone().map(|url| Advertised {
                claim_key: format!("{url}#{index}"),
                url,
                topic: crate::routing::owners_topic(app),
            }),
            producer,
            restorer,
            standbys: self.standbys.clone(),
            globals: globals.clone(),
            late_topic: cfg.late_topic(),
            exactly_once,
            refusals: self.refusals.clone(),
            origins: Mutex::default(),
            rewind_requested: AtomicBool::new(false),
            commit_requested: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            state: Mutex::new(EngineState::default()),
        });
        let consumer: BaseConsumer<StreamContext> = consumer_cfg
            .create_with_context(StreamContext { engine: engine.clone() })
            .map_err(StreamError::kafka("creating the consumer"))?;
        consumer.subscribe(&self.topology.lead_topics()).map_err(StreamError::kafka("subscribing"))?;

        let mut last_commit = Instant::now();
        let mut last_punctuation = Instant::now();
        let mut last_partition_check = Instant::now();
        let mut step = || -> Result<(), StreamError> {
            if let Some(e) = engine.take_fatal() {
                return Err(e);
            }
            engine.finish_restores(&consumer)?;
            let mut next = consumer.poll(Duration::from_millis(100));
            let mut taken = 0;
            while let Some(polled) = next {
                match polled {
                    Ok(msg) => {
                        let input = input_of(&msg);
                        drop(msg);
                        engine.handle(&consumer, input)?;
                    }
                    // The consumer is done for (fenced as a static member after a broker restart, say): the thread
                    // starts over with new clients. Nothing else may notice: a thread whose tasks are all restoring
                    // has nothing to commit, so no commit fails.
                    Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
                        return Err(StreamError::Kafka { context: "consuming".into(), source: e });
                    }
                    Err(e) => tracing::warn!(error = %e, "consumer error"),
                }
                taken += 1;
                // A flush asks for a commit right after its record, and a refusal for a rewind; a rebalance
                // callback's fatal error ends the thread: none of them waits for the rest of the batch.
                if taken == POLL_BATCH || engine.must_stop_reading() {
                    break;
                }
                next = consumer.poll(Duration::ZERO);
            }
            engine.producer.poll(Duration::ZERO);
            if index == 0 {
                // The threads share the global tables; one keeps them current.
                engine.globals.poll()?;
                // And one watches the sources' partition counts.
                if last_partition_check.elapsed() >= PARTITION_CHECK_INTERVAL {
                    topics::check_partitions_unchanged(&consumer, &self.topology, &partitions)?;
                    last_partition_check = Instant::now();
                }
            }
            engine.retry_due(&consumer)?;
            if last_punctuation.elapsed() >= PUNCTUATION_INTERVAL {
                engine.punctuate()?;
                last_punctuation = Instant::now();
            }
            if engine.commit_requested.swap(false, Ordering::SeqCst) || last_commit.elapsed() >= cfg.commit_interval {
                engine.commit(&consumer, None)?;
                last_commit = Instant::now();
            }
            Ok(())
        };
        let mut run = || -> Result<(), StreamError> {
            while !self.shutdown.is_triggered() {
                if let Err(e) = step() {
                    engine.recover(&consumer, e, &BTreeSet::new())?;
                }
            }
            tracing::info!("shutting down: committing and closing tasks");
            if let Err(e) = engine.commit(&consumer, None) {
                engine.recover(&consumer, e, &BTreeSet::new())?;
                engine.commit(&consumer, None)?;
            }
            Ok(())
        };
        let outcome = run();
        match outcome {
            Ok(()) => engine.close_all(),
            Err(_) => engine.abandon(),
        }
        leave_group(&consumer);
        drop(consumer);
        outcome?;
        engine.take_fatal().map_or(Ok(()), Err)
    }
}

/// How long a stream thread that stops waits for the group to take its partitions back.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Leaves the group before the consumer is dropped, on every way out (a stop, or an error that ends the thread):
/// unsubscribes, then polls until the group has taken the assignment back, answering its revocation in the
/// rebalance callback, and starts no task it is handed meanwhile. On the error path the consumer used to be dropped
/// with its assignment, leaving the revocation to librdkafka's close; once (a source that had gained partitions,
/// the group rebalancing as the thread stopped) the callback's unassign inside that close never returned, and the
/// service that should have stopped with the reason hung instead. librdkafka's advice for a cooperative consumer:
/// unsubscribe, wait until nothing is assigned, then close.
fn leave_group(consumer: &BaseConsumer<StreamContext>) {
    consumer.context().engine.leaving.store(true, Ordering::SeqCst);
    consumer.unsubscribe();
    let deadline = Instant::now() + LEAVE_TIMEOUT;
    while consumer.assignment().is_ok_and(|a| a.count() > 0) && Instant::now() < deadline {
        // Only rebalance events arrive once unsubscribed: the poll serves the revocation.
        let _ = consumer.poll(Duration::from_millis(100));
    }
}

fn input_of(msg: &BorrowedMessage<'_>) -> InputRecord {
    let headers = msg
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
        .unwrap_or_default();
    InputRecord {
        position: SourcePosition { topic: msg.topic().to_owned(), partition: msg.partition(), offset: msg.offset() },
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        timestamp: msg.timestamp().into(),
        headers,
    }
}
