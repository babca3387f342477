//! Errors, split by who must act on them.
//!
//! [`ProcessError`] is what a processor returns for one record: the runtime dead-letters invalid input, retries
//! transient failures with backoff (without committing past the record), and stops on anything else.
//! [`StreamError`] is what stops the runtime itself: broker, store or configuration trouble.

use crate::state::StoreError;

/// The outcome of processing one record, when it is not success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The record cannot be processed, ever (bad field, unknown currency, ...). The runtime takes back what the
    /// record wrote to stores and outputs (up to a processor's last `flush`), writes the original bytes to the
    /// dead-letter topic with this reason in the `error` header, and moves on.
    #[error("{0}")]
    Invalid(String),
    /// A transient failure outside the stream (SMTP down, ...). The runtime takes back what the record wrote (up to
    /// a processor's last `flush`), pauses the partition, processes the same record again after a backoff, and
    /// commits no offset past it meanwhile. A side effect outside Kafka cannot be taken back: return this before
    /// causing one, or record the effect and `flush` first.
    #[error("transient failure: {0}")]
    Retry(String),
    /// Local state failed: the task cannot go on.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing to Kafka failed during a processor's `flush` (a broker outage): the runtime treats it as it treats
    /// the same failure at a commit (a thread restart, or an abort under exactly-once), not as a bug.
    #[error(transparent)]
    Sink(Box<StreamError>),
    /// A bug or a broken invariant: the runtime stops without committing.
    #[error("fatal: {0}")]
    Fatal(String),
}

/// Why the runtime stopped, or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The Kafka client reported an error.
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What the runtime was doing.
        context: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// A local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker did not acknowledge a produced record; offsets were not committed past it.
    #[error("delivery failed: {0}")]
    Delivery(String),
    /// A processor reported a fatal error.
    #[error("processing failed: {0}")]
    Process(String),
    /// The topology or the configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
}

impl StreamError {
    pub(crate) fn kafka(context: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let context = context.into();
        move |source| StreamError::Kafka { context, source }
    }
}
