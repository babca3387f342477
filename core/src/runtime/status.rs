//! The runtime's lifecycle, readable from HTTP handlers: `/readyz` answers 200 only while `Running`, i.e. the group
//! has given the instance its partitions and their state is restored. The assignment may be empty: an instance
//! with more peers than partitions is a ready standby that takes tasks over when another instance leaves.
//!
//! With several stream threads each keeps its own phase and tasks (by name, `<sub-topology>_<partition>`); the runtime's phase is the least
//! advanced of the threads that matter (one restoring makes the runtime restoring; a thread that owns nothing yet
//! does not hold the others back), and its task count is the sum.

use crate::task_id::TaskId;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

impl Phase {
    fn of(n: u8) -> Phase {
        match n {
            0 => Phase::Starting,
            1 => Phase::Restoring,
            2 => Phase::Running,
            _ => Phase::Stopped,
        }
    }
}

#[derive(Default)]
struct ThreadStatus {
    phase: AtomicU8,
    tasks: AtomicUsize,
    /// The tasks processing.
    active: Mutex<BTreeSet<TaskId>>,
    /// The tasks restoring.
    restoring: Mutex<BTreeSet<TaskId>>,
}

/// Shared, cheap-to-read status of a runtime and its stream threads.
#[derive(Clone)]
pub struct RuntimeStatus {
    threads: Arc<[ThreadStatus]>,
}

impl Default for RuntimeStatus {
    fn default() -> Self {
        RuntimeStatus::new(1)
    }
}

/// One stream thread's handle on the runtime's status.
#[derive(Clone)]
pub(crate) struct ThreadHandle {
    status: RuntimeStatus,
    index: usize,
}

impl ThreadHandle {
    pub(crate) fn set_phase(&self, phase: Phase) {
        self.status.threads[self.index].phase.store(phase as u8, Ordering::SeqCst);
    }
    /// The thread's tasks: those processing and those restoring.
    pub(crate) fn set_tasks(&self, active: BTreeSet<TaskId>, restoring: BTreeSet<TaskId>) {
        let thread = &self.status.threads[self.index];
        thread.tasks.store(active.len() + restoring.len(), Ordering::SeqCst);
        *thread.active.lock().unwrap_or_else(|p| p.into_inner()) = active;
        *thread.restoring.lock().unwrap_or_else(|p| p.into_inner()) = restoring;
    }
    /// The whole runtime's status.
    pub(crate) fn runtime(&self) -> &RuntimeStatus {
        &self.status
    }
}

impl RuntimeStatus {
    pub(crate) fn new(threads: usize) -> Self {
        RuntimeStatus { threads: (0..threads.max(1)).map(|_| ThreadStatus::default()).collect() }
    }
    pub(crate) fn thread(&self, index: usize) -> ThreadHandle {
        ThreadHandle { status: self.clone(), index: index.min(self.threads.len() - 1) }
    }
    pub(crate) fn set_stopped(&self) {
        for t in self.threads.iter() {
            t.phase.store(Phase::Stopped as u8, Ordering::SeqCst);
        }
    }
    /// The current phase.
    pub fn phase(&self) -> Phase {
        let phases: Vec<(Phase, usize)> =
            self.threads.iter().map(|t| (Phase::of(t.phase.load(Ordering::SeqCst)), t.tasks.load(Ordering::SeqCst))).collect();
        if phases.iter().any(|(p, _)| *p == Phase::Stopped) {
            Phase::Stopped
        } else if phases.iter().any(|(p, _)| *p == Phase::Restoring) {
            Phase::Restoring
        } else if phases.iter().any(|(p, _)| *p == Phase::Running) {
            Phase::Running
        } else {
            Phase::Starting
        }
    }
    /// Number of tasks owned (processing or restoring), over every stream thread.
    pub fn tasks(&self) -> usize {
        self.threads.iter().map(|t| t.tasks.load(Ordering::SeqCst)).sum()
    }
    /// The tasks processing, over every stream thread.
    pub fn active(&self) -> BTreeSet<TaskId> {
        self.threads.iter().flat_map(|t| t.active.lock().unwrap_or_else(|p| p.into_inner()).clone()).collect()
    }
    /// The tasks restoring, over every stream thread: their keys cannot be answered yet.
    pub fn restoring(&self) -> BTreeSet<TaskId> {
        self.threads.iter().flat_map(|t| t.restoring.lock().unwrap_or_else(|p| p.into_inner()).clone()).collect()
    }
    /// Partitions assigned (possibly none), state restored, processing.
    pub fn is_ready(&self) -> bool {
        self.phase() == Phase::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restoring_thread_makes_the_runtime_restoring_and_an_idle_one_does_not_hold_it_back() {
        let s = RuntimeStatus::new(2);
        let (a, b) = (s.thread(0), s.thread(1));
        assert_eq!(s.phase(), Phase::Starting);
        let tasks = |ids: &[(usize, i32)]| ids.iter().map(|&(st, p)| TaskId::new(st, p)).collect::<BTreeSet<_>>();
        a.set_tasks(tasks(&[(0, 0), (0, 1), (1, 0)]), BTreeSet::new());
        a.set_phase(Phase::Running);
        assert!(s.is_ready(), "thread 1 owns nothing yet");
        a.set_tasks(BTreeSet::new(), BTreeSet::new());
        assert!(s.is_ready(), "an empty assignment is a ready standby");
        a.set_tasks(tasks(&[(0, 0), (0, 1), (1, 0)]), BTreeSet::new());
        b.set_tasks(BTreeSet::new(), tasks(&[(1, 1)]));
        b.set_phase(Phase::Restoring);
        assert!(!s.is_ready());
        assert_eq!((s.restoring(), s.tasks()), (tasks(&[(1, 1)]), 4));
        b.set_tasks(tasks(&[(1, 1)]), BTreeSet::new());
        b.set_phase(Phase::Running);
        assert_eq!((s.phase(), s.tasks(), s.active().len()), (Phase::Running, 4, 4));
        s.set_stopped();
        assert!(!s.is_ready());
    }
}
