//! Topics the runtime needs before it starts: the sources must exist; changelogs (compacted, one partition per
//! partition of their sub-topology), the dead-letter topic and missing sink topics are created with explicit
//! partition counts (see `copartition`), never left to auto-creation (invariant 8, docs/src/invariants.md).

use super::copartition::Partitions;
use super::StreamsConfig;
use crate::error::StreamError;
use crate::topology::Topology;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A topic the runtime writes and creates when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// `cleanup.policy=compact` (changelogs, global tables) rather than delete.
    pub compacted: bool,
    /// A changelog: it needs a partition for every partition of its store's sub-topology.
    pub changelog: bool,
    /// A repartition topic: it needs exactly its reader's partitions (with more, records written to the others
    /// would reach no task; with fewer, keys would land where no task of theirs reads).
    pub repartition: bool,
    /// A fixed partition count the topology requires (a single-partition sub-topology's input).
    pub partitions: Option<i32>,
    /// Without a fixed count, the sub-topology whose partition count it takes: the one that reads it (a topic the
    /// topology writes and reads again), else the one that writes it, or for a changelog its store's; `None` (dead
    /// letters, late records, global tables): the largest.
    pub subtopology: Option<usize>,
}

/// Every topic a runtime for `topology` writes: changelogs (compacted), repartition topics, the dead-letter topic,
/// the late-record topic (when it has windows), the sink topics, and global tables' topics (created empty and
/// compacted when missing: reference data the user fills). The runtime creates the missing ones with the partition
/// counts `copartition` gives them; the demo creates them through the mock cluster's own API from this same list.
pub fn topics_to_create(topology: &Topology, config: &StreamsConfig) -> Vec<TopicSpec> {
    let spec = |name: String, compacted| TopicSpec {
        partitions: topology.required_partitions(&name),
        subtopology: topology.subtopology_of(&name).or_else(|| topology.writer_of(&name)),
        name,
        compacted,
        changelog: false,
        repartition: false,
    };
    let mut topics: Vec<TopicSpec> = topology
        .stores()
        .iter()
        .map(|s| TopicSpec {
            changelog: true,
            subtopology: topology.store_subtopology(&s.name),
            ..spec(s.changelog_topic(topology.name()), true)
        })
        .collect();
    topics.extend(topology.internal_topics().iter().map(|t| TopicSpec { repartition: true, ..spec(t.clone(), false) }));
    topics.push(spec(config.dead_letter_topic(), false));
    if topology.has_late_records() {
        topics.push(spec(config.late_topic(), false));
    }
    topics.extend(topology.sink_topics().into_iter().map(|t| spec(t.to_owned(), false)));
    topics.extend(topology.global_topics().into_iter().map(|t| spec(t.to_owned(), true)));
    if config.advertised_url.is_some() {
        let name = crate::routing::owners_topic(topology.name());
        topics.push(TopicSpec { name, compacted: true, changelog: false, repartition: false, partitions: Some(1), subtopology: None });
    }
    topics
}

/// Partition counts of existing topics, once every one of `sources` exists (or `timeout` passed: the caller
/// reports the missing ones).
pub(crate) fn wait_for_sources(consumer: &BaseConsumer, sources: &[&str], timeout: Duration) -> Result<BTreeMap<String, i32>, StreamError> {
    let deadline = Instant::now() + timeout;
    loop {
        let existing = partition_counts(consumer, Duration::from_secs(30))?;
        let missing: Vec<&&str> = sources.iter().filter(|s| !existing.contains_key(**s)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            return Ok(existing);
        }
        tracing::info!(?missing, "waiting for source topics");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// While running: every source topic must still have the partition count the application started with. One
/// that gained partitions has partitions no task reads in step with the others (a task joins partition p of each
/// source of its sub-topology, and a key's partition, its state and its changelog partition all follow the count),
/// so it is an error with the reason, never a silent gap. A metadata request that fails (a broker away) decides
/// nothing.
pub(crate) fn check_partitions_unchanged<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topology: &Topology,
    partitions: &Partitions,
) -> Result<(), StreamError> {
    let counts = match partition_counts(consumer, Duration::from_secs(10)) {
        Ok(counts) => counts,
        Err(e) => {
            tracing::debug!(error = %e, "metadata not available for the partition check; trying again later");
            return Ok(());
        }
    };
    for (topic, now) in &counts {
        let Some(started_with) = partitions.of_source(topology, topic) else { continue };
        if *now != started_with {
            return Err(StreamError::Config(format!(
                "source topic {topic} now has {now} partitions where the application started with {started_with}: a \
                 task reads partition p of every source, so partitions {started_with}.. would be read out of step with \
                 the others and keys would move away from their state. Stopping; give the sub-topology's source \
                 topics the same count and reprocess into a new application id (the start-up check says what is left to do)"
            )));
        }
    }
    Ok(())
}

/// Partition counts of existing topics.
pub(crate) fn partition_counts<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    timeout: Duration,
) -> Result<BTreeMap<String, i32>, StreamError> {
    let md = consumer.fetch_metadata(None, timeout).map_err(StreamError::kafka("fetching metadata"))?;
    Ok(md.topics().iter().filter(|t| t.error().is_none()).map(|t| (t.name().to_owned(), t.partitions().len() as i32)).collect())
}

/// Create the wanted topics that do not exist yet, with the counts `partitions` gives them; check the ones that do.
pub(crate) fn ensure(
    client: &ClientConfig,
    existing: &BTreeMap<String, i32>,
    wanted: &[TopicSpec],
    partitions: &Partitions,
) -> Result<(), StreamError> {
    let mut missing = Vec::new();
    for w in wanted {
        let expected = partitions.for_topic(w);
        match existing.get(&w.name) {
            Some(&n) if w.changelog && n < expected => {
                return Err(StreamError::Config(format!("changelog {} has {n} partitions but its store's tasks need {expected}", w.name)));
            }
            Some(&n) if w.repartition && w.partitions.is_none() && n != expected => {
                return Err(StreamError::Config(format!(
                    "repartition topic {} has {n} partitions but the sub-topology reading it has {expected}: its records \
                     would not all reach the tasks that own their keys (delete it, or give the input the same count)",
                    w.name
                )));
            }
            Some(&n) if w.partitions.is_some_and(|p| p != n) => {
                return Err(StreamError::Config(format!("topic {} has {n} partitions; this topology needs {:?}", w.name, w.partitions)));
            }
            Some(_) => {}
            None => missing.push(w),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client.create().map_err(StreamError::kafka("creating admin client"))?;
    let topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|w| {
            let t = NewTopic::new(&w.name, partitions.for_topic(w), TopicReplication::Fixed(-1));
            if w.compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StreamError::Config(format!("admin runtime: {e}")))?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = rt.block_on(admin.create_topics(&topics, &opts)).map_err(StreamError::kafka("creating topics"))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(StreamError::Config(format!("cannot create topic {name}: {code}"))),
        }
    }
    wait_for_leaders(client, missing.iter().map(|w| w.name.as_str()))
}

/// A created topic is usable only once every partition has a leader; until then watermark and produce requests
/// fail with NotLeaderForPartition.
fn wait_for_leaders<'a>(client: &ClientConfig, topics: impl Iterator<Item = &'a str>) -> Result<(), StreamError> {
    let probe: BaseConsumer = client.create().map_err(StreamError::kafka("creating a metadata client"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for topic in topics {
        loop {
            let ready = probe.fetch_metadata(Some(topic), Duration::from_secs(5)).ok().is_some_and(|md| {
                md.topics().iter().any(|t| {
                    t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())
                })
            });
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(StreamError::Config(format!("topic {topic} has no leader 30 s after its creation")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}
