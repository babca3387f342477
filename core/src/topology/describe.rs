//! `describe()`: the topology as text (in the shape Kafka Streams prints) and as a Mermaid flowchart, so the
//! docs' diagrams are generated from the code rather than drawn by hand.

use super::{NodeKind, Topology};
use crate::runtime::Partitions;
use crate::task_id::TaskId;
use std::collections::BTreeSet;
use std::fmt::Write;

impl Topology {
    /// The topology as indented text: per sub-topology, each node, its topics and stores, its successors and
    /// predecessors.
    pub fn describe(&self) -> String {
        let mut s = format!("Topology: {}\n", self.name);
        for n in (0..self.subtopologies).flat_map(|st| self.nodes.iter().filter(move |n| n.subtopology == st)) {
            if self.nodes.iter().find(|m| m.subtopology == n.subtopology).is_some_and(|first| std::ptr::eq(first, n)) {
                let _ = writeln!(s, " Sub-topology: {}", n.subtopology);
            }
            let names = |ids: &[usize]| ids.iter().map(|&i| self.nodes[i].name.as_str()).collect::<Vec<_>>().join(", ");
            let _ = match &n.kind {
                NodeKind::Source { topic } => writeln!(s, "  Source: {} (topic: {topic})", n.name),
                NodeKind::Processor { op } if n.stores.is_empty() => writeln!(s, "  Processor: {} ({op})", n.name),
                NodeKind::Processor { op } => writeln!(s, "  Processor: {} ({op}; stores: {})", n.name, n.stores.join(", ")),
                NodeKind::Sink { topic } => writeln!(s, "  Sink: {} (topic: {topic})", n.name),
            };
            if !n.children.is_empty() {
                let _ = writeln!(s, "    --> {}", names(&n.children));
            }
            if !n.parents.is_empty() {
                let _ = writeln!(s, "    <-- {}", names(&n.parents));
            }
        }
        for st in &self.stores {
            let _ = writeln!(s, "  Store: {} ({:?}; changelog: {})", st.name, st.backend, st.changelog_topic(&self.name));
        }
        for g in &self.globals {
            let _ = writeln!(s, "  Global table: {} (topic: {}; read in full by every instance)", g.store, g.topic);
        }
        s
    }

    /// The tasks of each sub-topology, named as Kafka Streams names them, with those of this instance marked: `*`
    /// processing, `~` restoring.
    pub fn describe_tasks(&self, partitions: &Partitions, active: &BTreeSet<TaskId>, restoring: &BTreeSet<TaskId>) -> String {
        let mut s = format!("Tasks of {} (* processing here, ~ restoring here):\n", self.name);
        for st in 0..self.subtopologies {
            let names: Vec<String> = (0..partitions.of_subtopology(st))
                .map(|p| {
                    let id = TaskId::new(st, p);
                    let mark = if active.contains(&id) {
                        "*"
                    } else if restoring.contains(&id) {
                        "~"
                    } else {
                        ""
                    };
                    format!("{id}{mark}")
                })
                .collect();
            let _ = writeln!(s, " Sub-topology {st}: {}", names.join(" "));
        }
        s
    }

    /// The topology as a Mermaid flowchart: topics as stadiums, processors as boxes, stores as cylinders.
    pub fn to_mermaid(&self) -> String {
        let id = |name: &str| name.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let mut s = String::from("flowchart LR\n");
        for n in &self.nodes {
            let _ = match &n.kind {
                NodeKind::Source { topic } => writeln!(s, "  t_{}([{topic}]) --> {}[{}]", id(topic), id(&n.name), n.name),
                NodeKind::Processor { op } => writeln!(s, "  {}[\"{}<br/><i>{op}</i>\"]", id(&n.name), n.name),
                NodeKind::Sink { topic } => writeln!(s, "  {}[{}] --> t_{}([{topic}])", id(&n.name), n.name, id(topic)),
            };
            for &c in &n.children {
                let _ = writeln!(s, "  {} --> {}", id(&n.name), id(&self.nodes[c].name));
            }
            for st in &n.stores {
                let _ = writeln!(s, "  {} -.- s_{}[({st})]", id(&n.name), id(st));
            }
        }
        s
    }
}
