//! Ownership claims: which tasks this instance runs, published for query routing.
//!
//! Each stream thread claims its tasks (running or restoring) on the compacted `<application-id>-owners` topic, under its own
//! key, whenever its assignment changes; [`crate::routing`] reads the claims back to forward a query for a key to
//! the instance that owns it.

use super::delivery::NO_ORIGIN;
use super::engine::Engine;
use crate::error::StreamError;
use crate::record::OutgoingRecord;
use crate::task_id::TaskId;
use std::collections::BTreeSet;

/// A stream thread's ownership claims (see [`crate::routing`]).
pub(super) struct Advertised {
    /// The instance's URL, where queries for the claimed tasks go.
    pub(super) url: String,
    /// `<application-id>-owners`.
    pub(super) topic: String,
    /// The claims' key, `<url>#<thread>`: each thread claims its own tasks under its own key, so that its claims,
    /// which only its producer writes, stay in the order it made them (two threads' producers, let alone their
    /// transactions, reach the topic in no set order, and a compacted topic keeps the last record per key).
    pub(super) claim_key: String,
}

impl Engine {
    /// Change the instance's owned tasks with `change` and, when it advertises itself, publish this thread's.
    pub(super) fn claim(&self, change: impl FnOnce(&mut BTreeSet<TaskId>)) -> Result<(), StreamError> {
        change(&mut self.owned.lock().unwrap_or_else(|p| p.into_inner()));
        let Some(advertised) = &self.advertised else { return Ok(()) };
        let tasks = self.owned_here();
        let claim = crate::routing::Claim { url: advertised.url.clone(), tasks, at: chrono::Utc::now().timestamp_millis() };
        let value = serde_json::to_vec(&claim).map_err(|e| StreamError::Config(format!("encoding the ownership claim: {e}")))?;
        self.send(
            OutgoingRecord {
                topic: advertised.topic.clone(),
                partition: None,
                key: Some(advertised.claim_key.clone().into_bytes()),
                value: Some(value),
                headers: Vec::new(),
                timestamp: None,
            },
            NO_ORIGIN,
        )
    }
}
