//! The rules, as a pure function of a card's state, its profile and one transaction, so each can be tested on
//! its own with borderline cases on both sides of its threshold.
//!
//! A card's state is small and bounded: running statistics of its normal amounts (Welford) and its recent
//! transactions (time, place, amount, what fired). Rules are decided by *event time*, not arrival order: a
//! transaction's velocity counts the card's transactions in the 10 minutes up to its own time, its daily spend
//! is the sum of that day's transactions up to its own time, travel compares it with the nearest places before
//! and after it (and when it conflicts with just one of them, that one is the odd one out). So when a
//! transaction arrives out of order (a wrongly keyed record takes a longer path through
//! the repartition topic), the later transactions it precedes are judged again, and any that now break a rule
//! get a *revised* alert: the same `alert_id`, with the rules that fired so far.

use crate::model::{Profile, Rule};
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use streamcore::stats::{RunningStats, StatsOverflow};

/// The detector's thresholds.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// `velocity`: more than this many transactions within `velocity_window_ms`.
    pub max_txns: usize,
    /// The velocity window.
    pub velocity_window_ms: i64,
    /// `impossible_travel`: implied speed above this.
    pub max_speed_kmh: f64,
    /// `amount_anomaly`: the card needs this many earlier normal amounts before it is judged.
    pub anomaly_min_history: u64,
    /// `amount_anomaly`: more than this many standard deviations above the card's mean...
    pub anomaly_sigmas: Decimal,
    /// ...and more than this multiple of the mean.
    pub anomaly_ratio: Decimal,
    /// The zone whose calendar days `daily_limit` counts.
    pub timezone: Tz,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_txns: 5,
            velocity_window_ms: 10 * 60_000,
            max_speed_kmh: 900.0,
            anomaly_min_history: 10,
            anomaly_sigmas: Decimal::from(4),
            anomaly_ratio: Decimal::from(3),
            timezone: chrono_tz::UTC,
        }
    }
}

/// Transactions kept per card at least (for velocity and travel)...
const KEPT: usize = 32;
/// ...and all of those on the last few calendar days (for daily spend), up to a bound.
const DAYS_KEPT: i64 = 3;
const KEPT_AT_MOST: usize = 400;

/// A transaction of the card, as the rules remember it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// The transaction.
    pub txn_id: String,
    /// Event time (ms).
    pub ts: i64,
    /// Its calendar day in the rules' zone.
    pub date: NaiveDate,
    /// Amount in USD.
    pub amount_usd: Decimal,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Whether this is where the holder really was (not itself flagged as impossible travel).
    pub anchor: bool,
    /// The rules that fired on it so far.
    pub rules: Vec<Rule>,
}

/// One card's state, in the `cards` store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CardState {
    /// Running statistics of the card's normal amounts (USD); anomalous amounts are left out, so one fraud does
    /// not make the next look normal.
    pub amounts: RunningStats,
    /// Recent transactions, by event time.
    pub recent: Vec<Seen>,
    /// Transactions seen.
    pub transactions: u64,
    /// Transactions that arrived before the card had a profile.
    pub without_profile: u64,
}

/// One transaction, as the rules see it.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The transaction.
    pub txn_id: String,
    /// Event time (ms).
    pub ts: i64,
    /// Amount in USD.
    pub amount_usd: Decimal,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Whether its merchant is on the blocklist.
    pub blocked_merchant: bool,
}

/// A verdict: a transaction, its event time, and every rule that has fired on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The transaction.
    pub txn_id: String,
    /// Its event time (ms).
    pub ts: i64,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// Great-circle distance in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0 * 2.0 * a.sqrt().asin()
}

impl CardState {
    /// Transactions in the velocity window ending at `ts` (inclusive).
    fn in_window(&self, ts: i64, th: &Thresholds) -> usize {
        self.recent.iter().filter(|s| s.ts <= ts && s.ts > ts - th.velocity_window_ms).count()
    }

    /// Whether the day's spend up to and including `ts` is over `limit` (a sum beyond any decimal is).
    fn spent_over(&self, date: NaiveDate, ts: i64, limit: Decimal) -> bool {
        self.recent
            .iter()
            .filter(|s| s.date == date && s.ts <= ts)
            .try_fold(Decimal::ZERO, |spent, s| spent.checked_add(s.amount_usd))
            .is_none_or(|spent| spent > limit)
    }

    /// Judge `t`, fold it into the state, and judge again the later transactions its arrival changes.
    /// `closed`: the card's profile was deleted before `t`. Returns the verdicts to publish: `t`'s if any rule
    /// fired, then revisions. An amount the card's running statistics cannot take in is refused before anything
    /// changes (the caller dead-letters the transaction).
    pub fn observe(
        &mut self,
        t: &Observed,
        profile: Option<&Profile>,
        closed: bool,
        th: &Thresholds,
    ) -> Result<Vec<Verdict>, StatsOverflow> {
        let date = th.timezone.timestamp_millis_opt(t.ts).single().map_or(NaiveDate::MIN, |d| d.date_naive());
        let mut rules = Vec::new();
        let a = &self.amounts;
        // A bound beyond any decimal is one no amount exceeds.
        let above = |bound: Option<Decimal>| bound.is_some_and(|bound| t.amount_usd > bound);
        let anomalous = a.count >= th.anomaly_min_history
            && above(th.anomaly_sigmas.checked_mul(a.std_dev()).and_then(|spread| a.mean.checked_add(spread)))
            && above(th.anomaly_ratio.checked_mul(a.mean));
        let mut amounts = a.clone();
        if !anomalous {
            amounts.add(t.amount_usd)?;
        }
        // Impossible travel: compare with the nearest places before and after. When it conflicts with only one of
        // two neighbours, the one it conflicts with is the odd one out (the transaction that arrived earlier was
        // judged without this one): that neighbour is flagged instead, by revision.
        let pos = self.recent.partition_point(|s| s.ts <= t.ts);
        let before = self.recent[..pos].iter().rposition(|s| s.anchor);
        let after = self.recent[pos..].iter().position(|s| s.anchor).map(|i| i + pos);
        let too_fast = |i: Option<usize>| {
            i.is_some_and(|i| {
                let s = &self.recent[i];
                let km = distance_km(s.lat, s.lon, t.lat, t.lon);
                let hours = (t.ts - s.ts).abs() as f64 / 3_600_000.0;
                km > 1.0 && (hours == 0.0 || km / hours > th.max_speed_kmh)
            })
        };
        let (fast_before, fast_after) = (too_fast(before), too_fast(after));
        let odd_neighbour = match (fast_before, fast_after) {
            (true, false) if after.is_some() => before,
            (false, true) if before.is_some() => after,
            _ => None,
        };
        let travel = (fast_before || fast_after) && odd_neighbour.is_none();

        // Fold it in first: velocity and daily spend count it along with the others.
        self.transactions += 1;
        if profile.is_none() {
            self.without_profile += 1;
        }
        self.amounts = amounts;
        let mut verdicts = Vec::new();
        if let Some(i) = odd_neighbour {
            let s = &mut self.recent[i];
            s.anchor = false;
            if !s.rules.contains(&Rule::ImpossibleTravel) {
                s.rules.push(Rule::ImpossibleTravel);
                s.rules.sort();
                verdicts.push(Verdict { txn_id: s.txn_id.clone(), ts: s.ts, rules: s.rules.clone() });
            }
        }
        let seen = Seen {
            txn_id: t.txn_id.clone(),
            ts: t.ts,
            date,
            amount_usd: t.amount_usd,
            lat: t.lat,
            lon: t.lon,
            anchor: !travel,
            rules: Vec::new(),
        };
        self.recent.insert(pos, seen);

        if self.in_window(t.ts, th) > th.max_txns {
            rules.push(Rule::Velocity);
        }
        if anomalous {
            rules.push(Rule::AmountAnomaly);
        }
        if travel {
            rules.push(Rule::ImpossibleTravel);
        }
        if profile.is_some_and(|p| self.spent_over(date, t.ts, p.daily_limit)) {
            rules.push(Rule::DailyLimit);
        }
        if closed {
            rules.push(Rule::ClosedCard);
        }
        if t.blocked_merchant {
            rules.push(Rule::BlockedMerchant);
        }
        self.recent[pos].rules.clone_from(&rules);
        if !rules.is_empty() {
            verdicts.insert(0, Verdict { txn_id: t.txn_id.clone(), ts: t.ts, rules });
        }

        // Later transactions whose window or day now includes this one.
        for i in pos + 1..self.recent.len() {
            let s = &self.recent[i];
            let mut added = Vec::new();
            if s.ts <= t.ts + th.velocity_window_ms && !s.rules.contains(&Rule::Velocity) && self.in_window(s.ts, th) > th.max_txns {
                added.push(Rule::Velocity);
            }
            if s.date == date && !s.rules.contains(&Rule::DailyLimit) && profile.is_some_and(|p| self.spent_over(date, s.ts, p.daily_limit))
            {
                added.push(Rule::DailyLimit);
            }
            if !added.is_empty() {
                let s = &mut self.recent[i];
                s.rules.extend(added);
                s.rules.sort();
                verdicts.push(Verdict { txn_id: s.txn_id.clone(), ts: s.ts, rules: s.rules.clone() });
            }
        }
        self.forget_old();
        Ok(verdicts)
    }

    /// Keep the last `KEPT` transactions, and all of those on the last `DAYS_KEPT` days, at most `KEPT_AT_MOST`.
    fn forget_old(&mut self) {
        let Some(newest) = self.recent.last().map(|s| s.date) else { return };
        let oldest_day = newest - chrono::Duration::days(DAYS_KEPT - 1);
        let keep_from = self.recent.len().saturating_sub(KEPT).min(self.recent.partition_point(|s| s.date < oldest_day));
        let keep_from = keep_from.max(self.recent.len().saturating_sub(KEPT_AT_MOST));
        self.recent.drain(..keep_from);
    }
}

/// 1 - prod(1 - weight): independent evidence, 0 when nothing fired, rounded to 4 places.
pub fn score(rules: &[Rule]) -> f64 {
    let miss: f64 = rules.iter().map(|r| 1.0 - r.weight()).product();
    ((1.0 - miss) * 10_000.0).round() / 10_000.0
}
