//! The driver's input and its oracle: trades with known content, and what the daily statistics must say.
//!
//! Trades go round-robin over the symbols, one trading day, keyed by symbol, each symbol's event times strictly
//! increasing, so every trade is one daily-statistics update and the oracle is plain arithmetic (count, volume,
//! high, low, open, close), computed here without the ticker's code. Mixed in at fixed places: one record in
//! `1 / BAD_EVERY` that is not JSON (it must reach the dead-letter topic) and one trade in `1 / BAD_EVERY` from two
//! days earlier, after its symbol's first trade of the day, so past the daily window's grace (it must reach the
//! late topic, and be counted nowhere).

use chrono::{DateTime, Duration as Span, FixedOffset, NaiveDate, TimeZone};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// One malformed record and one late trade in this many records: 0.1% each.
pub const BAD_EVERY: usize = 1000;

/// What the daily statistics of one symbol must end at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Trades counted.
    pub trades: u64,
    /// Shares.
    pub volume: u64,
    /// First price.
    pub open: Decimal,
    /// Last price.
    pub close: Decimal,
    /// Highest.
    pub high: Decimal,
    /// Lowest.
    pub low: Decimal,
}

/// The records to write, in order, and what they must produce.
pub struct Workload {
    /// (key, value) in production order.
    pub records: Vec<(Option<String>, Vec<u8>)>,
    /// Per symbol, the day's final statistics.
    pub expected: BTreeMap<String, Expected>,
    /// The trading day.
    pub date: NaiveDate,
    /// Records that are not JSON.
    pub malformed: usize,
    /// Trades past the daily window's grace.
    pub late: usize,
}

impl Workload {
    /// `n` records over `symbols` symbols.
    pub fn new(n: usize, symbols: usize) -> Self {
        let new_york = FixedOffset::west_opt(5 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"));
        let open: DateTime<FixedOffset> = new_york.with_ymd_and_hms(2026, 11, 23, 9, 30, 0).single().unwrap_or_default();
        let mut records = Vec::with_capacity(n);
        let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
        let (mut malformed, mut late) = (0, 0);
        for i in 0..n {
            let symbol = format!("S{:03}", i % symbols);
            if i % BAD_EVERY == BAD_EVERY / 4 {
                records.push((Some(symbol.clone()), format!(r#"{{"symbol":"{symbol}","price":"#).into_bytes()));
                malformed += 1;
                continue;
            }
            let price = Decimal::new(10_000 + ((i * 7919) % 5_000) as i64, 2);
            let volume = 1 + (i % 97) as u64;
            if i % BAD_EVERY == BAD_EVERY / 2 && i >= symbols {
                let ts = open - Span::days(2) + Span::milliseconds(i as i64);
                records.push((Some(symbol.clone()), trade(&symbol, price, volume, ts)));
                late += 1;
                continue;
            }
            let ts = open + Span::milliseconds(10 * i as i64);
            records.push((Some(symbol.clone()), trade(&symbol, price, volume, ts)));
            let e = expected.entry(symbol).or_insert(Expected { trades: 0, volume: 0, open: price, close: price, high: price, low: price });
            e.trades += 1;
            e.volume += volume;
            e.close = price;
            e.high = e.high.max(price);
            e.low = e.low.min(price);
        }
        Workload { records, expected, date: open.date_naive(), malformed, late }
    }

    /// Valid, in-time trades: the daily-statistics updates exactly-once must produce.
    pub fn updates(&self) -> u64 {
        self.expected.values().map(|e| e.trades).sum()
    }
}

fn trade(symbol: &str, price: Decimal, volume: u64, ts: DateTime<FixedOffset>) -> Vec<u8> {
    let ts = ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    format!(r#"{{"symbol":"{symbol}","price":"{price}","volume":{volume},"ts":"{ts}"}}"#).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_counts_every_valid_trade_and_nothing_injected() {
        let w = Workload::new(3000, 10);
        assert_eq!((w.malformed, w.late), (3, 3));
        assert_eq!(w.updates(), 2994);
        assert_eq!(w.records.len(), 3000);
        let s0 = &w.expected["S000"];
        assert!(s0.low <= s0.open && s0.open <= s0.high && s0.low <= s0.close && s0.close <= s0.high);
        assert_eq!(w.date, NaiveDate::from_ymd_opt(2026, 11, 23).expect("date"));
    }
}
