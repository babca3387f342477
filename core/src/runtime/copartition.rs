//! Co-partitioning: how many partitions, and so how many tasks, each sub-topology has.
//!
//! Task `<s>_<p>` reads partition p of every source topic of sub-topology s, so those topics must have the same
//! partition count: a stream and the table it joins must be partitioned alike, or a key's records and its row
//! would meet in different tasks. This is checked at start-up, and again while running (a topic that gains
//! partitions moves keys away from their state). Sub-topologies meet only through topics, so their counts may
//! differ: a topic the topology writes and reads again (a repartition topic, or the single-partition changes topic
//! behind the stock ticker's top-10) has the count the topology fixes for it
//! ([`TopologyBuilder::topic_partitions`](crate::TopologyBuilder::topic_partitions)), or else that of the
//! sub-topology reading it, which is the count of that sub-topology's other sources (a table it is joined with),
//! or else the writer's.

use super::topics::TopicSpec;
use crate::error::StreamError;
use crate::topology::Topology;
use std::collections::BTreeMap;

/// Each sub-topology's partition count: its tasks are `<sub-topology>_0` to `<sub-topology>_<count - 1>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions(Vec<i32>);

impl Partitions {
    /// The counts of `topology`'s sub-topologies, from the partition counts of the `existing` topics: every
    /// external source must be among them. A sub-topology that reads what another writes waits for that one's
    /// count, whatever their numbers (a table's sub-topology, numbered first, may read a repartition topic that a
    /// later-numbered one writes).
    pub(crate) fn of(topology: &Topology, existing: &BTreeMap<String, i32>) -> Result<Self, StreamError> {
        let mut counts: Vec<Option<i32>> = vec![None; topology.subtopologies()];
        while counts.iter().any(Option::is_none) {
            let mut progressed = false;
            for st in 0..counts.len() {
                if counts[st].is_some() {
                    continue;
                }
                if let Some(count) = Self::count(topology, st, existing, &counts)? {
                    counts[st] = Some(count);
                    progressed = true;
                }
            }
            if !progressed {
                let waiting: Vec<String> = (0..counts.len()).filter(|&st| counts[st].is_none()).map(|st| st.to_string()).collect();
                return Err(StreamError::Config(format!(
                    "sub-topologies {} read each other's output in a cycle: fix a partition count on one of the topics \
                     between them (TopologyBuilder::topic_partitions)",
                    waiting.join(", ")
                )));
            }
        }
        Ok(Partitions(counts.into_iter().flatten().collect()))
    }

    /// Sub-topology `st`'s count, or `None` while it waits for a writer's. Its *firm* sources (the user's topics,
    /// and topics with a fixed count) must agree; a topic the topology writes itself without a fixed count is made
    /// to match them (Kafka Streams' co-partitioning does the same with repartition topics), or, when the
    /// sub-topology reads only such topics, they take the largest count of the sub-topologies writing them.
    fn count(topology: &Topology, st: usize, existing: &BTreeMap<String, i32>, counts: &[Option<i32>]) -> Result<Option<i32>, StreamError> {
        let (mut firm, mut written) = (Vec::new(), Vec::new());
        for topic in topology.sources_of(st) {
            match (topology.writer_of(topic), topology.required_partitions(topic)) {
                (_, Some(n)) => firm.push((topic, n)),
                (Some(writer), None) => written.push(writer),
                (None, None) => {
                    let n = *existing.get(topic).ok_or_else(|| StreamError::Config(format!("source topic {topic} does not exist")))?;
                    firm.push((topic, n));
                }
            }
        }
        if let Some(&(_, count)) = firm.first() {
            if firm.iter().any(|(_, n)| *n != count) {
                let listed: Vec<String> = firm.iter().map(|(t, n)| format!("{t}: {n}")).collect();
                return Err(StreamError::Config(format!(
                    "the sources of sub-topology {st} are not co-partitioned ({}); its task {st}_p joins partition p of \
                     each, so they need the same partition count",
                    listed.join(", ")
                )));
            }
            return Ok(Some(count));
        }
        let writers: Option<Vec<i32>> = written.iter().map(|&w| counts.get(w).copied().flatten()).collect();
        match writers {
            Some(ns) => ns.into_iter().max().map(Some).ok_or_else(|| StreamError::Config(format!("sub-topology {st} has no source"))),
            None => Ok(None),
        }
    }

    /// The same count for every one of `subtopologies` sub-topologies (for tests that need no topology).
    #[cfg(test)]
    pub(crate) fn uniform(subtopologies: usize, count: i32) -> Self {
        Partitions(vec![count; subtopologies.max(1)])
    }

    /// Sub-topology `subtopology`'s partition count (0 for one the topology does not have).
    pub fn of_subtopology(&self, subtopology: usize) -> i32 {
        self.0.get(subtopology).copied().unwrap_or(0)
    }

    /// The largest count: that of topics no one sub-topology owns (dead letters, late records, global tables).
    pub fn largest(&self) -> i32 {
        self.0.iter().copied().max().unwrap_or(1)
    }

    /// How many partitions the runtime gives topic `spec` when it creates it.
    pub(crate) fn for_topic(&self, spec: &TopicSpec) -> i32 {
        spec.partitions.or_else(|| spec.subtopology.map(|st| self.of_subtopology(st))).unwrap_or_else(|| self.largest())
    }

    /// The expected count of source topic `topic` of `topology`.
    pub(crate) fn of_source(&self, topology: &Topology, topic: &str) -> Option<i32> {
        topology.subtopology_of(topic).map(|st| self.of_subtopology(st))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Json;
    use crate::time::{EventTime, TimestampKind};
    use crate::{Record, TopologyBuilder};

    fn at(_: &u64) -> EventTime {
        EventTime { millis: 0, kind: TimestampKind::CreateTime }
    }

    /// `in` (4 partitions) repartitioned into sub-topology 1, whose output `ranked` (fixed at 1) sub-topology 2 reads.
    fn staged() -> Topology {
        let b = TopologyBuilder::new("staged");
        let rekeyed = b.source("in", Json::<u64>::new(), at).repartition("by-value", |r: &Record<u64>| Some(r.value.to_string()));
        rekeyed.to("ranked-sink", "ranked", Json::new(), |r: &Record<u64>| r.key.clone());
        drop(rekeyed);
        b.topic_partitions("ranked", 1);
        b.source("ranked", Json::<u64>::new(), at).to("out-sink", "out", Json::new(), |r: &Record<u64>| r.key.clone());
        b.build().expect("topology")
    }

    #[test]
    fn each_sub_topology_takes_its_sources_count_and_a_topic_it_reads_from_another_takes_the_writers_or_the_fixed_one() {
        let topology = staged();
        assert_eq!(topology.external_source_topics(), vec!["in"], "the topology creates what it writes itself");
        let partitions = Partitions::of(&topology, &BTreeMap::from([("in".to_owned(), 4)])).expect("co-partitioned");
        assert_eq!(partitions, Partitions(vec![4, 4, 1]));
        assert_eq!(partitions.largest(), 4);
    }

    #[test]
    fn a_joined_table_and_its_repartitioned_stream_are_one_sub_topology_numbered_before_the_one_writing_the_stream() {
        let b = TopologyBuilder::new("enriched");
        let table = b.table("rows", Json::<u64>::new(), crate::state::StoreSpec::in_memory("rows"));
        let rekeyed = b.source("in", Json::<u64>::new(), at).repartition("by-value", |r: &Record<u64>| Some(r.value.to_string()));
        let joined = rekeyed.join_table("join", &table, |r: Record<u64>, row: Option<u64>| r.value + row.unwrap_or(0));
        joined.to("sink", "out", Json::new(), |r: &Record<u64>| r.key.clone());
        drop((table, rekeyed, joined));
        let topology = b.build().expect("topology");
        assert_eq!(topology.subtopologies(), 2);
        assert_eq!(topology.subtopology_of("rows"), topology.subtopology_of("enriched-by-value-repartition"), "the join links them");
        assert_eq!(topology.store_subtopology("rows"), Some(0));
        let existing = BTreeMap::from([("in".to_owned(), 3), ("rows".to_owned(), 3)]);
        assert_eq!(Partitions::of(&topology, &existing).expect("co-partitioned"), Partitions(vec![3, 3]));
        // The repartition topic follows the table it is joined with, not the topic it was written from.
        let wider = BTreeMap::from([("in".to_owned(), 6), ("rows".to_owned(), 3)]);
        assert_eq!(Partitions::of(&topology, &wider).expect("co-partitioned"), Partitions(vec![3, 6]));
    }

    #[test]
    fn sources_of_one_sub_topology_with_different_counts_are_refused_with_both_counts() {
        let b = TopologyBuilder::new("joined");
        let table = b.table("rows", Json::<u64>::new(), crate::state::StoreSpec::in_memory("rows"));
        let joined = b
            .source("in", Json::<u64>::new(), at)
            .join_table("join", &table, |r: Record<u64>, row: Option<u64>| r.value + row.unwrap_or(0));
        joined.to("sink", "out", Json::new(), |r: &Record<u64>| r.key.clone());
        drop(joined);
        drop(table);
        let topology = b.build().expect("topology");
        let err = Partitions::of(&topology, &BTreeMap::from([("in".to_owned(), 4), ("rows".to_owned(), 2)])).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("rows: 2") && text.contains("in: 4") && text.contains("sub-topology 0"), "{text}");
    }
}
