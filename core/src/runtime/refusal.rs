//! Records the broker refuses: a bounded number of attempts, then the dead-letter topic.
//!
//! Some outputs pass every check the producer makes and are still refused by the broker, every time: a topic whose
//! `max.message.bytes` is below the producer's limit, a timestamp outside the topic's
//! `message.timestamp.{before,after}.max.ms`, a record the topic's policy rejects. Processing the input again
//! produces the same output, so without a bound the thread would abort and reprocess it forever (exactly-once) or
//! restart it forever (at-least-once), and everything behind it on its partition would wait.
//!
//! So a refusal is pinned on the input that caused it (every output carries its input's index as the delivery
//! opaque), the thread goes back to its last commit, and the suspect is processed *alone*: what was sent before it
//! is acknowledged first, and its own outputs right after it. A refusal of a record processed alone is its own,
//! never a neighbour's that shared a batch with it; a suspect that goes through is cleared. After
//! [`MAX_ATTEMPTS`] refusals the input goes to the dead-letter topic with the broker's reason, is counted
//! (`streamcore_refused_records_total`) and committed past.

use crate::record::SourcePosition;
use std::collections::HashMap;
use std::sync::Mutex;

/// How many times the broker may refuse an input's outputs before the input is dead-lettered.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// What to do with an input record before processing it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Never refused: process it as usual.
    Process,
    /// Refused before, fewer than [`MAX_ATTEMPTS`] times: process it alone.
    Alone,
    /// Refused [`MAX_ATTEMPTS`] times: dead-letter it, with this reason.
    DeadLetter(String),
    /// Its dead letter was refused too: the dead-letter topic takes nothing, which no input can fix.
    Stuck(String),
}

/// The inputs whose outputs the broker refused, and how often, shared by a runtime's threads and kept across a
/// thread's restart (which is what an at-least-once thread does after an undeliverable record).
#[derive(Default)]
pub(crate) struct Refusals(Mutex<HashMap<(String, i32, i64), Refused>>);

/// One input's refusals.
#[derive(Default)]
struct Refused {
    times: u32,
    reason: String,
    /// Its dead letter was counted: an abort that sends it again (exactly-once) does not count it twice.
    counted: bool,
}

fn key(p: &SourcePosition) -> (String, i32, i64) {
    (p.topic.clone(), p.partition, p.offset)
}

impl Refusals {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32, i64), Refused>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker refused an output of the input at `position`, for `reason`.
    pub(crate) fn refused(&self, position: &SourcePosition, reason: &str) {
        let mut map = self.map();
        let entry = map.entry(key(position)).or_default();
        entry.times += 1;
        reason.clone_into(&mut entry.reason);
    }

    /// What to do with the input at `position`.
    pub(crate) fn verdict(&self, position: &SourcePosition) -> Verdict {
        let map = self.map();
        if map.is_empty() {
            return Verdict::Process;
        }
        match map.get(&key(position)) {
            None => Verdict::Process,
            Some(r) if r.times < MAX_ATTEMPTS => Verdict::Alone,
            Some(r) if r.times == MAX_ATTEMPTS => {
                Verdict::DeadLetter(format!("the broker refused this record's output {} times: {}", r.times, r.reason))
            }
            Some(r) => Verdict::Stuck(r.reason.clone()),
        }
    }

    /// The input at `position` was dead-lettered: true the first time, so that it is counted once however often an
    /// abort sends its dead letter again.
    pub(crate) fn first_dead_letter(&self, position: &SourcePosition) -> bool {
        self.map().get_mut(&key(position)).is_some_and(|r| !std::mem::replace(&mut r.counted, true))
    }

    /// The input at `position`, processed alone, went through: it was a neighbour's refusal, not its own.
    pub(crate) fn cleared(&self, position: &SourcePosition) {
        self.map().remove(&key(position));
    }

    /// `topic`/`partition` committed up to `next`: its inputs below that are past, whatever they were.
    pub(crate) fn committed(&self, topic: &str, partition: i32, next: i64) {
        let mut map = self.map();
        if !map.is_empty() {
            map.retain(|(t, p, o), _| !(t == topic && *p == partition && *o < next));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> SourcePosition {
        SourcePosition { topic: "in".into(), partition: 0, offset }
    }

    #[test]
    fn a_refused_input_is_tried_alone_then_dead_lettered_and_a_cleared_one_is_forgotten() {
        let r = Refusals::default();
        r.refused(&at(1), "Broker: Invalid timestamp");
        r.refused(&at(2), "Broker: Invalid timestamp");
        assert_eq!(r.verdict(&at(0)), Verdict::Process);
        assert_eq!(r.verdict(&at(1)), Verdict::Alone);
        r.cleared(&at(2));
        assert_eq!(r.verdict(&at(2)), Verdict::Process, "went through alone: it was its neighbour's refusal");
        r.refused(&at(1), "Broker: Invalid timestamp");
        assert_eq!(r.verdict(&at(1)), Verdict::Alone);
        r.refused(&at(1), "Broker: Invalid timestamp");
        let Verdict::DeadLetter(reason) = r.verdict(&at(1)) else { panic!("three refusals dead-letter it") };
        assert!(reason.contains("3 times: Broker: Invalid timestamp"), "{reason}");
        assert!(r.first_dead_letter(&at(1)), "counted once");
        assert!(!r.first_dead_letter(&at(1)), "not again when an abort sends it again");
        r.refused(&at(1), "Broker: Message size too large");
        assert!(matches!(r.verdict(&at(1)), Verdict::Stuck(_)), "its dead letter was refused as well");
        r.committed("in", 0, 2);
        assert_eq!(r.verdict(&at(1)), Verdict::Process, "committed past");
    }
}
