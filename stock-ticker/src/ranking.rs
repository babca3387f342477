//! The top-10's second phase: multi-phase processing as the chapter describes it. The daily aggregation
//! (sub-topology 1) runs one task per partition and can only know its own symbols; so it writes each symbol's daily
//! change to the single-partition topic `stock-daily-changes`, and sub-topology 2's one task (`2_0`), which sees
//! every symbol, keeps the day's ranking.
//!
//! The ranking must hold *every* symbol's latest change, not only the current ten: when a leader falls back, the
//! eleventh must be there to take its place. Changes are stored per (date, symbol), so a symbol is replaced, never
//! listed twice; an in-memory ordered index (rebuilt from the store when the task starts) makes each update
//! O(log n), and a new list is emitted only when the ten actually changed. Whether they changed is decided
//! against the day's last list, kept in memory beside the index (read from the store once, at the start), not
//! by decoding the stored list again for every change: most changes leave the ten as they were.
//!
//! A day is a window like any other: it takes changes until the ranking's observed time (the highest event time of
//! the changes it has seen, kept in the store across restarts) passes the day's end plus the daily grace. A change
//! for a closed day goes to `stock-ticker.late`, never silently nowhere, whatever order the changes arrive in (a
//! replay, a lagging task of the daily aggregation); and a closed day's per-symbol changes are dropped, its list kept.

use crate::model::{DailyChange, Ranked, Top10};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use streamcore::state::Order;
use streamcore::window::DailyWindows;
use streamcore::{ProcessError, Processor, ProcessorContext, Record};

/// Store of every symbol's latest change, key `<date>/<symbol>`.
pub const CHANGES_STORE: &str = "daily-changes";
/// Store of the lists, key `<date>`.
pub const TOP10_STORE: &str = "top10";
/// List length.
const TOP: usize = 10;
/// Key of the observed time in [`CHANGES_STORE`] (change keys all have a `/`).
const OBSERVED_KEY: &str = "observed-time";

#[derive(Default)]
struct Day {
    entries: BTreeMap<String, Ranked>,
    gainers: BTreeSet<(Reverse<Decimal>, String)>,
    losers: BTreeSet<(Decimal, String)>,
    /// The list last written to the store (and emitted) for this day.
    list: Option<Top10>,
}

impl Day {
    fn set(&mut self, r: Ranked) {
        if let Some(old) = self.entries.remove(&r.symbol) {
            self.gainers.remove(&(Reverse(old.change_pct), old.symbol.clone()));
            self.losers.remove(&(old.change_pct, old.symbol));
        }
        if r.change_pct > Decimal::ZERO {
            self.gainers.insert((Reverse(r.change_pct), r.symbol.clone()));
        } else if r.change_pct < Decimal::ZERO {
            self.losers.insert((r.change_pct, r.symbol.clone()));
        }
        self.entries.insert(r.symbol.clone(), r);
    }

    /// The ten (or fewer) entries in `order`.
    fn pick<'a>(&'a self, order: impl Iterator<Item = &'a String> + 'a) -> impl Iterator<Item = &'a Ranked> + 'a {
        order.take(TOP).filter_map(|s| self.entries.get(s))
    }

    fn gainers(&self) -> impl Iterator<Item = &Ranked> {
        self.pick(self.gainers.iter().map(|(_, s)| s))
    }

    fn losers(&self) -> impl Iterator<Item = &Ranked> {
        self.pick(self.losers.iter().map(|(_, s)| s))
    }

    /// The day's list now, if it differs from the last one written.
    fn changed_list(&self, date: NaiveDate) -> Option<Top10> {
        let unchanged = self.list.as_ref().is_some_and(|l| self.gainers().eq(l.gainers.iter()) && self.losers().eq(l.losers.iter()));
        (!unchanged).then(|| Top10 { date, gainers: self.gainers().cloned().collect(), losers: self.losers().cloned().collect() })
    }
}

/// The ranking processor, task `2_0`'s one stateful node.
pub struct Ranking {
    zone: DailyWindows,
    grace_ms: i64,
    days: BTreeMap<NaiveDate, Day>,
    /// The highest event time of the changes seen.
    observed: Option<i64>,
}

impl Ranking {
    /// Days in `zone`, each taking changes until `grace_ms` after its end.
    pub fn new(zone: DailyWindows, grace_ms: i64) -> Self {
        Ranking { zone, grace_ms, days: BTreeMap::new(), observed: None }
    }

    /// Whether `date`'s window has closed at `observed`.
    fn closed(&self, date: NaiveDate, observed: i64) -> bool {
        self.zone.window_of(date).is_none_or(|w| w.end.saturating_add(self.grace_ms) <= observed)
    }
}

fn change_key(date: NaiveDate, symbol: &str) -> String {
    format!("{date}/{symbol}")
}

impl Processor for Ranking {
    type In = DailyChange;
    type Out = Top10;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, '_, Top10>) -> Result<(), ProcessError> {
        let store = ctx.store(CHANGES_STORE)?;
        for (k, v) in store.range(Bound::Unbounded, Bound::Unbounded, Order::Ascending, usize::MAX)? {
            let key = String::from_utf8_lossy(&k);
            if key == OBSERVED_KEY {
                self.observed = serde_json::from_slice(&v).ok();
                continue;
            }
            let date = key.split('/').next().and_then(|d| d.parse::<NaiveDate>().ok());
            let ranked: Option<Ranked> = serde_json::from_slice(&v).ok();
            match (date, ranked) {
                (Some(date), Some(r)) => self.days.entry(date).or_default().set(r),
                _ => return Err(ProcessError::Fatal(format!("{CHANGES_STORE} holds an entry that does not decode: {key}"))),
            }
        }
        let lists = ctx.store(TOP10_STORE)?;
        for (date, day) in &mut self.days {
            day.list = lists.get_json(&date.to_string())?;
        }
        Ok(())
    }

    fn process(&mut self, record: Record<DailyChange>, ctx: &mut ProcessorContext<'_, '_, Top10>) -> Result<(), ProcessError> {
        let observed = self.observed.max(Some(record.time.millis)).unwrap_or(record.time.millis);
        if self.observed != Some(observed) {
            self.observed = Some(observed);
            ctx.store(CHANGES_STORE)?.put_json(OBSERVED_KEY, &observed)?;
            self.forget_closed_days(observed, ctx)?;
        }
        if self.closed(record.value.date, observed) {
            let reason = format!("the day {} had closed (grace {} ms) when its change arrived", record.value.date, self.grace_ms);
            return ctx.send_late(&record, "rank", reason, observed);
        }
        let c = record.value;
        let ranked = Ranked { symbol: c.symbol.clone(), change_pct: c.change_pct, close: c.close };
        let store = ctx.store(CHANGES_STORE)?;
        store.put_json(&change_key(c.date, &c.symbol), &ranked)?;
        let day = self.days.entry(c.date).or_default();
        day.set(ranked);
        if let Some(top) = day.changed_list(c.date) {
            let date_key = c.date.to_string();
            ctx.store(TOP10_STORE)?.put_json(&date_key, &top)?;
            day.list = Some(top.clone());
            ctx.forward(Record { key: Some(date_key), value: top, time: record.time });
        }
        Ok(())
    }
}

impl Ranking {
    /// Drop the per-symbol changes of days closed at `observed` (their lists stay queryable).
    fn forget_closed_days(&mut self, observed: i64, ctx: &mut ProcessorContext<'_, '_, Top10>) -> Result<(), ProcessError> {
        while let Some(&date) = self.days.keys().next().filter(|d| self.closed(**d, observed)) {
            let Some(day) = self.days.remove(&date) else { break };
            let store = ctx.store(CHANGES_STORE)?;
            for symbol in day.entries.keys() {
                store.delete(change_key(date, symbol).into_bytes());
            }
        }
        Ok(())
    }
}
