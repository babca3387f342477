//! How long a stream thread pauses before it rejoins after its Kafka clients failed.
//!
//! A thread whose clients fail (a broker gone, a consumer fenced, a transaction that cannot be initialised) drops
//! its tasks and joins the group again with new clients. It does so for as long as the failures last: a broker that
//! is down for an hour, or whose disk filled up, stops no instance. Only the pause grows, doubling from
//! [`FIRST_PAUSE`] to [`MAX_PAUSE`], so that a broker that is down is not hammered, and it starts again from the
//! first once a thread has stayed up for [`STABLE_RUN`].
//!
//! The runtime used to give up after ten failures within a minute of each other. In a walk through the book the
//! compose stack's broker lost its log directory to a full disk; the ticker, under exactly-once, failed ten times in
//! the next five minutes (each `init_transactions` waits 30 s), exited, and nothing restarted it.

use std::time::Duration;

/// A thread that ran this long before its clients failed pauses for [`FIRST_PAUSE`] again.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// The pause after a first failure.
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// The longest pause: a thread is back at work within this long of its broker's return, however long it was gone.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// The pauses of one thread's failures in a row.
pub(super) struct RejoinPause {
    next: Duration,
}

impl RejoinPause {
    pub(super) fn new() -> Self {
        Self { next: FIRST_PAUSE }
    }

    /// The pause before rejoining, after clients that ran for `ran_for` failed.
    pub(super) fn after_failure(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= STABLE_RUN {
            self.next = FIRST_PAUSE;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_PAUSE);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_pause_longer_up_to_the_cap_and_never_give_up() {
        let mut p = RejoinPause::new();
        let quick = Duration::from_secs(2);
        let pauses: Vec<u64> = (0..8).map(|_| p.after_failure(quick).as_secs()).collect();
        assert_eq!(pauses, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        // An hour of failures, each after two seconds of trying: the thread still rejoins, every 30 s.
        for _ in 0..120 {
            assert_eq!(p.after_failure(quick), MAX_PAUSE);
        }
    }

    #[test]
    fn a_thread_that_stayed_up_starts_again_from_the_first_pause() {
        let mut p = RejoinPause::new();
        for _ in 0..6 {
            p.after_failure(Duration::from_secs(1));
        }
        assert_eq!(p.after_failure(STABLE_RUN), FIRST_PAUSE);
        assert_eq!(p.after_failure(Duration::from_secs(1)), Duration::from_secs(2));
    }
}
