//! Properties of window assignment over random sizes, advances and instants, and over random days of forty years
//! of New York's daylight-saving history.

use chrono::{Duration, Timelike};
use proptest::prelude::*;
use streamcore::window::{DailyWindows, TimeWindows};

proptest! {
    #[test]
    fn every_window_contains_the_instant_and_they_step_by_the_advance(
        size_s in 1i64..7200, advance_frac in 1i64..=100, ts in -10_000_000_000i64..10_000_000_000_000i64,
    ) {
        let size = size_s * 1000;
        let advance = (size * advance_frac / 100).max(1);
        let w = TimeWindows::hopping(Duration::milliseconds(size), Duration::milliseconds(advance)).expect("valid shape");
        let got: Vec<_> = w.windows_for(ts).collect();
        prop_assert!(!got.is_empty());
        for win in &got {
            prop_assert!(win.contains(ts));
            prop_assert_eq!(win.len_ms(), size);
            prop_assert_eq!(win.start.rem_euclid(advance), 0, "aligned to the advance");
        }
        for pair in got.windows(2) {
            prop_assert_eq!(pair[1].start - pair[0].start, advance);
        }
        // Exactly the aligned starts in (ts - size, ts]: none missing at either end.
        let expected = (ts.div_euclid(advance) - (ts - size).div_euclid(advance)) as usize;
        prop_assert_eq!(got.len(), expected);
    }

    #[test]
    fn a_new_york_day_contains_its_instants_and_lasts_23_24_or_25_hours(ts in 946_684_800_000i64..2_208_988_800_000i64) {
        let ny = DailyWindows::new(chrono_tz::America::New_York);
        let (date, day) = ny.window_for(ts).expect("day");
        prop_assert!(day.contains(ts));
        prop_assert!([23, 24, 25].contains(&(day.len_ms() / 3_600_000)), "{} lasts {} ms", date, day.len_ms());
        prop_assert_eq!(day.len_ms() % 3_600_000, 0);
        prop_assert_eq!(ny.date_of(day.start), Some(date));
        prop_assert_eq!(ny.date_of(day.end - 1), Some(date));
        prop_assert_eq!(ny.date_of(day.end), date.succ_opt());
        let local_start = chrono::DateTime::from_timestamp_millis(day.start).expect("start").with_timezone(&chrono_tz::America::New_York);
        prop_assert_eq!((local_start.hour(), local_start.minute()), (0, 0), "New York days start at local midnight");
    }
}
