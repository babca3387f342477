//! Windows: which time buckets an event belongs to, as pure functions of its event time.
//!
//! A window has a *size* and an *advance*: tumbling windows advance by their size (each event in exactly one),
//! hopping windows advance by less (each event in `size / advance` of them). Calendar days are a third kind:
//! a day in a time zone is not 24 hours long on daylight-saving days (23 in spring, 25 in autumn in New York),
//! so a fixed 24-hour window shifted by an offset puts an hour of trades into the wrong day twice a year.
//! [`DailyWindows`] asks the time-zone database where each local day starts instead.
//!
//! Assignment is kept apart from state and from grace periods so it can be tested on its own, DST days included;
//! [`store`] keeps per-window state under (key, window start), and [`aggregate`] adds grace, late records, emit
//! modes and closing windows when a partition goes quiet.

pub mod aggregate;
pub mod store;

pub use aggregate::{EmitMode, Windowed, WindowedAggregation, Windowing};

use chrono::{Duration, LocalResult, NaiveDate, TimeZone};
use chrono_tz::Tz;

/// A half-open interval of event time, `[start, end)`, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after it.
    pub end: i64,
}

impl Window {
    /// Whether `ts` falls in the window.
    pub fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts < self.end
    }
    /// Length in milliseconds.
    pub fn len_ms(&self) -> i64 {
        self.end - self.start
    }
}

/// Why a window definition is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// Size and advance must be positive, and the advance no larger than the size.
    #[error("window size {size_ms} ms and advance {advance_ms} ms: both must be positive, advance <= size")]
    Shape {
        /// Size.
        size_ms: i64,
        /// Advance.
        advance_ms: i64,
    },
}

/// Fixed-size windows aligned to the epoch: tumbling when `advance == size`, hopping when smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size`.
    pub fn tumbling(size: Duration) -> Result<Self, WindowError> {
        Self::hopping(size, size)
    }

    /// Hopping windows of `size` starting every `advance`.
    pub fn hopping(size: Duration, advance: Duration) -> Result<Self, WindowError> {
        let (size_ms, advance_ms) = (size.num_milliseconds(), advance.num_milliseconds());
        if size_ms <= 0 || advance_ms <= 0 || advance_ms > size_ms {
            return Err(WindowError::Shape { size_ms, advance_ms });
        }
        Ok(TimeWindows { size_ms, advance_ms })
    }

    // ANCHOR: windows_for
    /// Every window containing `ts`, earliest first.
    pub fn windows_for(&self, ts: i64) -> impl Iterator<Item = Window> + use<> {
        let (size, advance) = (self.size_ms, self.advance_ms);
        // The latest window start at or before ts, then step back while the window still reaches ts.
        let last_start = ts - ts.rem_euclid(advance);
        let first_start = last_start - ((size - 1) / advance) * advance;
        (0..)
            .map(move |i| first_start + i * advance)
            .take_while(move |&s| s <= last_start)
            .filter(move |&s| s + size > ts)
            .map(move |s| Window { start: s, end: s + size })
    }
    // ANCHOR_END: windows_for
}

/// Calendar days in a time zone: each local day from its first instant to the next day's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindows {
    tz: Tz,
}

impl DailyWindows {
    /// Days in `tz` (an IANA zone such as `America/New_York`).
    pub fn new(tz: Tz) -> Self {
        DailyWindows { tz }
    }

    /// The local date `ts` falls on.
    pub fn date_of(&self, ts: i64) -> Option<NaiveDate> {
        Some(self.tz.timestamp_millis_opt(ts).single()?.date_naive())
    }

    /// The day containing `ts`, with the date it stands for.
    pub fn window_for(&self, ts: i64) -> Option<(NaiveDate, Window)> {
        let date = self.date_of(ts)?;
        Some((date, self.window_of(date)?))
    }

    /// The window of a local date: its first instant to the next day's.
    pub fn window_of(&self, date: NaiveDate) -> Option<Window> {
        Some(Window { start: self.day_start(date)?, end: self.day_start(date.succ_opt()?)? })
    }

    /// The first instant of a local date. Where a zone skips midnight (DST starting at 00:00, as Brazil's did),
    /// the day starts at the first local time that exists.
    fn day_start(&self, date: NaiveDate) -> Option<i64> {
        let mut t = date.and_hms_opt(0, 0, 0)?;
        for _ in 0..=24 * 4 {
            match self.tz.from_local_datetime(&t) {
                LocalResult::Single(d) => return Some(d.timestamp_millis()),
                // Fall-back ambiguity at midnight: the earlier instant is the day's start.
                LocalResult::Ambiguous(early, _) => return Some(early.timestamp_millis()),
                LocalResult::None => t += Duration::minutes(15),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").timestamp_millis()
    }
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    #[test]
    fn tumbling_puts_each_instant_in_exactly_one_window() {
        let w = TimeWindows::tumbling(Duration::minutes(5)).expect("windows");
        assert_eq!(w.windows_for(0).collect::<Vec<_>>(), vec![Window { start: 0, end: 5 * MIN }]);
        assert_eq!(w.windows_for(5 * MIN - 1).collect::<Vec<_>>(), vec![Window { start: 0, end: 5 * MIN }]);
        assert_eq!(w.windows_for(5 * MIN).collect::<Vec<_>>(), vec![Window { start: 5 * MIN, end: 10 * MIN }], "end is exclusive");
        assert_eq!(w.windows_for(-1).collect::<Vec<_>>(), vec![Window { start: -5 * MIN, end: 0 }], "before the epoch too");
    }

    #[test]
    fn hopping_windows_overlap_size_over_advance_times() {
        let w = TimeWindows::hopping(Duration::minutes(5), Duration::minutes(1)).expect("windows");
        let ts = 12 * MIN + 30_000;
        let got: Vec<_> = w.windows_for(ts).collect();
        assert_eq!(got.len(), 5);
        assert_eq!(got.first().map(|w| w.start), Some(8 * MIN));
        assert_eq!(got.last().map(|w| w.start), Some(12 * MIN));
        assert!(got.iter().all(|x| x.contains(ts) && x.len_ms() == 5 * MIN));
        // Exactly on a boundary: the window starting there, not the one ending there.
        let on: Vec<_> = w.windows_for(10 * MIN).map(|w| w.start / MIN).collect();
        assert_eq!(on, vec![6, 7, 8, 9, 10]);
        // An advance that does not divide the size.
        let odd = TimeWindows::hopping(Duration::minutes(5), Duration::minutes(2)).expect("windows");
        let starts: Vec<_> = odd.windows_for(10 * MIN).map(|w| w.start / MIN).collect();
        assert_eq!(starts, vec![6, 8, 10]);
        assert!(TimeWindows::hopping(Duration::minutes(1), Duration::minutes(2)).is_err());
        assert!(TimeWindows::tumbling(Duration::zero()).is_err());
    }

    #[test]
    fn new_york_days_are_23_and_25_hours_on_the_2026_dst_days() {
        let ny = DailyWindows::new(chrono_tz::America::New_York);
        // 8 March 2026: clocks jump from 02:00 to 03:00 EST->EDT.
        let (date, day) = ny.window_for(ms("2026-03-08T12:00:00-04:00")).expect("day");
        assert_eq!(date.to_string(), "2026-03-08");
        assert_eq!((day.start, day.end), (ms("2026-03-08T00:00:00-05:00"), ms("2026-03-09T00:00:00-04:00")));
        assert_eq!(day.len_ms(), 23 * HOUR);
        // 1 November 2026: clocks fall back from 02:00 EDT to 01:00 EST.
        let (date, day) = ny.window_for(ms("2026-11-01T01:30:00-05:00")).expect("day");
        assert_eq!(date.to_string(), "2026-11-01");
        assert_eq!(day.len_ms(), 25 * HOUR);
        // An ordinary day, and its exact boundaries.
        let (_, day) = ny.window_for(ms("2026-11-24T14:30:00.250Z")).expect("day");
        assert_eq!(day.len_ms(), 24 * HOUR);
        assert_eq!(ny.date_of(ms("2026-11-24T04:59:59.999Z")).map(|d| d.to_string()), Some("2026-11-23".into()));
        assert_eq!(ny.date_of(ms("2026-11-24T05:00:00Z")).map(|d| d.to_string()), Some("2026-11-24".into()));
    }

    #[test]
    fn a_fixed_24_hour_window_would_misplace_an_hour_on_dst_days() {
        // 00:30 local on 9 March 2026 (EDT, UTC-4) is 04:30Z; a fixed UTC-5 (EST) day puts it at 23:30 on the 8th.
        let ts = ms("2026-03-09T00:30:00-04:00");
        let fixed_offset_day = (ts - 5 * HOUR).div_euclid(24 * HOUR);
        let fixed_date = DateTime::from_timestamp_millis(fixed_offset_day * 24 * HOUR).expect("date").date_naive();
        assert_eq!(fixed_date.to_string(), "2026-03-08");
        assert_eq!(DailyWindows::new(chrono_tz::America::New_York).date_of(ts).map(|d| d.to_string()), Some("2026-03-09".into()));
    }

    #[test]
    fn a_day_whose_midnight_does_not_exist_starts_at_its_first_instant() {
        // Sao Paulo began DST at 00:00 on 4 November 2018: local midnight never happened, the day began at 01:00.
        let sp = DailyWindows::new(chrono_tz::America::Sao_Paulo);
        let (date, day) = sp.window_for(ms("2018-11-04T12:00:00-02:00")).expect("day");
        assert_eq!(date.to_string(), "2018-11-04");
        assert_eq!(day.start, ms("2018-11-04T01:00:00-02:00"));
        assert_eq!(day.len_ms(), 23 * HOUR);
    }
}
