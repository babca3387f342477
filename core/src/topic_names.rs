//! Topic names: the contract's names, a deployment's prefix for all of them, and an output prefix for a
//! reprocessing run.
//!
//! The contract fixes a service's topic names (`trades`, `stock-daily-stats`, ...). Two prefixes change them, and
//! a service asks this one place for every topic it reads or writes:
//! - `--topic-prefix P` renames every topic of the contract, inputs and outputs, and the dead-letter and late
//!   topics: several deployments (or tests) share a cluster, each in its own namespace.
//! - `--output-prefix O` renames only what the service writes. That is the chapter's reprocessing pattern: a new
//!   version reads the same inputs from the start under a new application id, writes `O<topic>` beside the running
//!   version's outputs, and once the two have been compared, the readers switch over. Without it the new version
//!   would write into the topics the old one's readers trust.
//!
//! A topic the service both writes and reads (the stock ticker's daily changes, which its ranking reads) is an
//! output, so a reprocessing run reads its own. Internal topics (changelogs, repartitions, owners) need neither:
//! they are named by the application id, as in Kafka Streams.

/// How a service names its topics: both prefixes, empty by default (the contract's names).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct TopicNames {
    /// Prepended to every topic the service reads or writes, its dead-letter and late topics included, so several
    /// deployments can share a cluster.
    #[arg(long, env = "TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
    /// Prepended (after `--topic-prefix`) to every topic the service writes, not to those it reads: a reprocessing
    /// run under a new application id writes beside the running version instead of into its outputs.
    #[arg(long, env = "OUTPUT_PREFIX", default_value = "")]
    pub output_prefix: String,
}

impl TopicNames {
    /// Every topic prefixed with `prefix`, outputs with nothing more.
    pub fn prefixed(prefix: &str) -> Self {
        TopicNames { topic_prefix: prefix.to_owned(), output_prefix: String::new() }
    }

    /// The full name of input topic `name`.
    pub fn input(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// The full name of output topic `name`.
    pub fn output(&self, name: &str) -> String {
        format!("{}{}{name}", self.topic_prefix, self.output_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deployment's prefix comes first and renames both sides; the output prefix renames only outputs.
    #[test]
    fn an_output_prefix_renames_what_is_written_and_leaves_what_is_read() {
        let names = TopicNames { topic_prefix: "blue.".into(), output_prefix: "v2.".into() };
        assert_eq!(names.input("trades"), "blue.trades");
        assert_eq!(names.output("stock-top10"), "blue.v2.stock-top10");
        assert_eq!(TopicNames::default().output("stock-top10"), "stock-top10");
        assert_eq!(TopicNames::prefixed("t.").output("x"), "t.x");
    }
}
