//! The rules, as a pure function of a card's state, its profile and one transaction, so each can be tested on
//! its own with borderline cases on both sides of its threshold.
//!
//! A card's state is small and bounded: running statistics of its normal amounts (Welford), the last few
//! transactions' times and places, and its spend on its last few calendar days. Out-of-order transactions are
//! placed by event time: velocity counts the card's transactions in the 10 minutes up to this one's event time,
//! travel compares with the nearest anchors before and after it, daily spend goes to the transaction's own day.

use crate::model::{Profile, Rule};
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use streamcore::stats::RunningStats;

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

/// Transactions kept per card for velocity and travel.
const KEPT: usize = 32;
/// Calendar days of spend kept per card.
const DAYS_KEPT: usize = 3;

/// Where and when a card was used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// Event time (ms).
    pub ts: i64,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Whether this is where the holder really was (not itself flagged as impossible travel).
    pub anchor: bool,
}

/// One card's state, in the `cards` store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CardState {
    /// Running statistics of the card's normal amounts (USD); anomalous amounts are left out, so one fraud does
    /// not make the next look normal.
    pub amounts: RunningStats,
    /// The last transactions by event time.
    pub recent: Vec<Seen>,
    /// Spend per calendar day (USD), the last few days.
    pub days: Vec<(NaiveDate, Decimal)>,
    /// Transactions seen.
    pub transactions: u64,
    /// Transactions that arrived before the card had a profile.
    pub without_profile: u64,
}

/// One transaction, as the rules see it.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Event time (ms).
    pub ts: i64,
    /// Amount in USD.
    pub amount_usd: Decimal,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Great-circle distance in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0 * 2.0 * a.sqrt().asin()
}

impl CardState {
    /// Evaluate `t` against the rules, then fold it into the state. `closed`: the card's profile was deleted.
    pub fn observe(&mut self, t: &Observed, profile: Option<&Profile>, closed: bool, th: &Thresholds) -> Vec<Rule> {
        let mut rules = Vec::new();
        let earlier = self.recent.iter().filter(|s| s.ts <= t.ts && s.ts > t.ts - th.velocity_window_ms).count();
        if earlier + 1 > th.max_txns {
            rules.push(Rule::Velocity);
        }
        let a = &self.amounts;
        let anomalous = a.count >= th.anomaly_min_history
            && t.amount_usd > a.mean + th.anomaly_sigmas * a.std_dev()
            && t.amount_usd > th.anomaly_ratio * a.mean;
        if anomalous {
            rules.push(Rule::AmountAnomaly);
        }
        let before = self.recent.iter().filter(|s| s.anchor && s.ts <= t.ts).max_by_key(|s| s.ts);
        let after = self.recent.iter().filter(|s| s.anchor && s.ts > t.ts).min_by_key(|s| s.ts);
        let too_fast = |s: &Seen| {
            let km = distance_km(s.lat, s.lon, t.lat, t.lon);
            let hours = (t.ts - s.ts).abs() as f64 / 3_600_000.0;
            km > 1.0 && (hours == 0.0 || km / hours > th.max_speed_kmh)
        };
        let travel = before.is_some_and(too_fast) || after.is_some_and(too_fast);
        if travel {
            rules.push(Rule::ImpossibleTravel);
        }
        let date = th.timezone.timestamp_millis_opt(t.ts).single().map(|d| d.date_naive());
        let spent = date.and_then(|d| self.days.iter().find(|(day, _)| *day == d)).map_or(Decimal::ZERO, |(_, s)| *s) + t.amount_usd;
        if profile.is_some_and(|p| spent > p.daily_limit) {
            rules.push(Rule::DailyLimit);
        }
        if closed {
            rules.push(Rule::ClosedCard);
        }

        // Fold it in.
        self.transactions += 1;
        if profile.is_none() {
            self.without_profile += 1;
        }
        if !anomalous {
            self.amounts.add(t.amount_usd);
        }
        let pos = self.recent.partition_point(|s| s.ts <= t.ts);
        self.recent.insert(pos, Seen { ts: t.ts, lat: t.lat, lon: t.lon, anchor: !travel });
        if self.recent.len() > KEPT {
            self.recent.remove(0);
        }
        if let Some(d) = date {
            match self.days.iter_mut().find(|(day, _)| *day == d) {
                Some(entry) => entry.1 = spent,
                None => {
                    self.days.push((d, spent));
                    self.days.sort_by_key(|(day, _)| *day);
                    if self.days.len() > DAYS_KEPT {
                        self.days.remove(0);
                    }
                }
            }
        }
        rules
    }
}

/// 1 - prod(1 - weight): independent evidence, 0 when nothing fired, rounded to 4 places.
pub fn score(rules: &[Rule]) -> f64 {
    let miss: f64 = rules.iter().map(|r| 1.0 - r.weight()).product();
    ((1.0 - miss) * 10_000.0).round() / 10_000.0
}
