//! The control rules as pure functions of a device's state: what a thermostat should be doing given its latest
//! complete 5-minute average, and whether a washer needs detergent today. The topology feeds them; tests call
//! them directly.
//!
//! - A thermostat's *desired mode* is `heat_on` below `target_c - band_c`, `cool_on` above `target_c + band_c`,
//!   `idle` inside the band (edges included). A command goes out only when the desired mode differs from the
//!   mode the controller last set; a thermostat the controller never told anything is taken to be idle, so a
//!   home that starts comfortable gets no command at all.
//! - A washer below the reorder level gets `reorder_detergent` at most once per calendar day (in the
//!   controller's time zone), and never for a day before the last one it reordered on: a reading delayed from
//!   yesterday does not order detergent again after today's order.

use crate::model::{Action, Command, Device, Reading};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A running mean, the aggregate of a temperature window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    /// Sum of the readings.
    pub sum: Decimal,
    /// How many.
    pub count: u64,
}

impl Mean {
    /// This mean with `x` added (`None` if the sum would overflow).
    pub fn with(self, x: Decimal) -> Option<Mean> {
        Some(Mean { sum: self.sum.checked_add(x)?, count: self.count + 1 })
    }

    /// The mean, rounded half away from zero to 4 places (`None` when empty).
    pub fn value(&self) -> Option<Decimal> {
        (self.count > 0)
            .then(|| (self.sum / Decimal::from(self.count)).round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero))
    }
}

/// A complete window's average temperature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Average {
    /// Window start (inclusive).
    pub window_start: DateTime<Utc>,
    /// Window end (exclusive).
    pub window_end: DateTime<Utc>,
    /// Mean temperature, °C.
    pub avg_c: Decimal,
    /// Readings in the window.
    pub readings: u64,
}

/// What the controller keeps per device (store `device-state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The newest reading by event time.
    pub latest: Option<Reading>,
    /// A thermostat's mode as the controller last set it.
    pub mode: Option<Action>,
    /// A thermostat's latest complete 5-minute average: what the mode was judged on.
    pub average: Option<Average>,
    /// A washer's last reorder day.
    pub reordered_on: Option<NaiveDate>,
    /// The last command the controller issued.
    pub last_command: Option<Command>,
}

impl DeviceState {
    /// Keep `reading` as the latest if it is not older than the one kept.
    pub fn observe(&mut self, reading: &Reading) {
        if self.latest.as_ref().is_none_or(|l| l.ts <= reading.ts) {
            self.latest = Some(reading.clone());
        }
    }

    /// Judge a thermostat on a complete window; the new mode if it changed.
    pub fn judge(&mut self, device: &Device, average: Average) -> Option<Action> {
        let desired = desired_mode(average.avg_c, device);
        self.average = Some(average);
        let current = self.mode.unwrap_or(Action::Idle);
        self.mode = Some(desired);
        (desired != current).then_some(desired)
    }

    /// Whether a washer at `level` percent on `day` should reorder now (and remember that it did).
    pub fn reorder(&mut self, level: Decimal, below: Decimal, day: NaiveDate) -> bool {
        if level >= below || self.reordered_on.is_some_and(|d| d >= day) {
            return false;
        }
        self.reordered_on = Some(day);
        true
    }
}

/// The mode a thermostat should be in at average temperature `avg`.
pub fn desired_mode(avg: Decimal, device: &Device) -> Action {
    if avg < device.target_c - device.band_c {
        Action::HeatOn
    } else if avg > device.target_c + device.band_c {
        Action::CoolOn
    } else {
        Action::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn thermostat() -> Device {
        Device {
            device_id: "t1".into(),
            home_id: "h1".into(),
            kind: Kind::Thermostat,
            target_c: Decimal::new(210, 1),
            band_c: Decimal::ONE,
        }
    }

    fn avg(c: Decimal) -> Average {
        Average { window_start: DateTime::UNIX_EPOCH, window_end: DateTime::UNIX_EPOCH, avg_c: c, readings: 1 }
    }

    #[test]
    fn the_band_edges_are_inside_the_band() {
        let d = thermostat();
        assert_eq!(desired_mode(Decimal::new(20, 0), &d), Action::Idle);
        assert_eq!(desired_mode(Decimal::new(22, 0), &d), Action::Idle);
        assert_eq!(desired_mode(Decimal::new(199999, 4), &d), Action::HeatOn);
        assert_eq!(desired_mode(Decimal::new(220001, 4), &d), Action::CoolOn);
    }

    #[test]
    fn a_command_only_when_the_mode_changes() {
        let (d, mut s) = (thermostat(), DeviceState::default());
        assert_eq!(s.judge(&d, avg(Decimal::new(21, 0))), None, "a comfortable home is already idle");
        assert_eq!(s.judge(&d, avg(Decimal::new(18, 0))), Some(Action::HeatOn));
        assert_eq!(s.judge(&d, avg(Decimal::new(19, 0))), None);
        assert_eq!(s.judge(&d, avg(Decimal::new(23, 0))), Some(Action::CoolOn));
        assert_eq!(s.judge(&d, avg(Decimal::new(21, 0))), Some(Action::Idle));
    }

    #[test]
    fn one_reorder_per_day_and_none_for_an_earlier_day() {
        let mut s = DeviceState::default();
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default();
        let below = Decimal::TEN;
        assert!(!s.reorder(Decimal::TEN, below, day(24)), "10% is not below 10%");
        assert!(s.reorder(Decimal::new(95, 1), below, day(24)));
        assert!(!s.reorder(Decimal::new(5, 0), below, day(24)));
        assert!(!s.reorder(Decimal::new(5, 0), below, day(23)), "a delayed reading from yesterday");
        assert!(s.reorder(Decimal::new(5, 0), below, day(25)));
    }

    #[test]
    fn the_mean_rounds_half_away_from_zero() {
        let m = Mean::default().with(Decimal::new(1, 0)).and_then(|m| m.with(Decimal::new(2, 0))).and_then(|m| m.with(Decimal::new(2, 0)));
        assert_eq!(m.and_then(|m| m.value()), Some(Decimal::new(16667, 4)));
        assert_eq!(Mean::default().value(), None);
        assert_eq!(Mean { sum: Decimal::MAX, count: 1 }.with(Decimal::ONE), None);
    }
}
