//! The runtime's lifecycle, readable from HTTP handlers: `/readyz` answers 200 only while `Running` with at least
//! one task, i.e. partitions are assigned and their state restored.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// Where the runtime is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Creating topics, connecting, waiting for the first assignment.
    Starting,
    /// Restoring stores of newly assigned tasks.
    Restoring,
    /// Processing.
    Running,
    /// Shutting down or stopped.
    Stopped,
}

/// Shared, cheap-to-read status of a runtime.
#[derive(Clone, Default)]
pub struct RuntimeStatus {
    phase: Arc<AtomicU8>,
    tasks: Arc<AtomicUsize>,
}

impl RuntimeStatus {
    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }
    pub(crate) fn set_tasks(&self, n: usize) {
        self.tasks.store(n, Ordering::SeqCst);
    }
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Restoring,
            2 => Phase::Running,
            _ => Phase::Stopped,
        }
    }
    /// Number of tasks owned.
    pub fn tasks(&self) -> usize {
        self.tasks.load(Ordering::SeqCst)
    }
    /// Partitions assigned, state restored, processing.
    pub fn is_ready(&self) -> bool {
        self.phase() == Phase::Running && self.tasks() > 0
    }
}
