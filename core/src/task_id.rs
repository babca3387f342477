//! A task's name: the sub-topology it runs and the partition it reads, printed `<sub-topology>_<partition>` as
//! Kafka Streams prints it (`0_3`, `1_0`).
//!
//! A repartition topic cuts a topology into sub-topologies that share nothing but the topic, so their tasks are
//! independent: task `1_2` (the aggregation of partition 2 of the repartitioned stream) may run on another thread or
//! instance than task `0_2` (the validation that wrote it), and sub-topologies may have different partition counts.

use std::fmt;
use std::str::FromStr;

/// The sub-topology a task runs and the partition of its sources it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    /// The sub-topology, numbered as `Topology::describe` numbers them.
    pub subtopology: usize,
    /// The partition of each of the sub-topology's source topics (and of its stores' changelogs).
    pub partition: i32,
}

impl TaskId {
    /// Task `<subtopology>_<partition>`.
    pub fn new(subtopology: usize, partition: i32) -> Self {
        TaskId { subtopology, partition }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// A name that is not `<sub-topology>_<partition>`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a task name (<sub-topology>_<partition>, as 1_0)")]
pub struct BadTaskId(String);

impl FromStr for TaskId {
    type Err = BadTaskId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadTaskId(s.to_owned());
        let (subtopology, partition) = s.split_once('_').ok_or_else(bad)?;
        Ok(TaskId { subtopology: subtopology.parse().map_err(|_| bad())?, partition: partition.parse().map_err(|_| bad())? })
    }
}

impl serde::Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_id_is_printed_and_read_back_as_kafka_streams_names_it() {
        let id = TaskId::new(1, 12);
        assert_eq!(id.to_string(), "1_12");
        assert_eq!("1_12".parse::<TaskId>().expect("parsed"), id);
        assert_eq!(serde_json::to_string(&[id]).expect("json"), r#"["1_12"]"#);
        for bad in ["1", "a_1", "1_b", "_", "1_2_3"] {
            assert!(bad.parse::<TaskId>().is_err(), "{bad}");
        }
    }
}
