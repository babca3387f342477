//! The events of the contract: a trade in; daily statistics, moving statistics, daily changes and the top-10 out;
//! and the aggregates kept in the window stores between them.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use streamcore::window::Window;

/// A trade, from topic `trades` (key: `symbol`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    /// Ticker symbol.
    pub symbol: String,
    /// Price per share; a JSON string or number, read exactly as written (never through a float, never rounded).
    #[serde(deserialize_with = "streamcore::codec::decimal::exact")]
    pub price: Decimal,
    /// Shares traded.
    pub volume: u64,
    /// Event time.
    pub ts: DateTime<FixedOffset>,
}

impl Trade {
    /// Why this trade cannot be counted, if it cannot: checked before repartitioning, so its dead letter points at
    /// the record the user wrote.
    pub fn problem(&self) -> Option<String> {
        let valid_symbol = !self.symbol.is_empty()
            && self.symbol.len() <= 16
            && self.symbol.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if !valid_symbol {
            return Some(format!("symbol {:?} is not 1-16 of A-Z, 0-9, '.', '-'", self.symbol));
        }
        if self.price <= Decimal::ZERO {
            return Some(format!("price {} is not positive", self.price));
        }
        if self.volume == 0 {
            return Some("volume is 0".into());
        }
        None
    }
}

/// Rounded half away from zero to 4 places, always printed with 4.
pub fn four_places(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(4);
    r
}

/// One symbol's trading day so far, as kept in the daily window store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayAggregate {
    /// Price of the earliest trade by event time (ties: the first to arrive).
    pub open: Decimal,
    /// Its event time (ms).
    pub open_ts: i64,
    /// Price of the latest trade by event time (ties: the last to arrive).
    pub close: Decimal,
    /// Its event time (ms).
    pub close_ts: i64,
    /// Highest price.
    pub high: Decimal,
    /// Lowest price.
    pub low: Decimal,
    /// Shares traded.
    pub volume: u64,
    /// Number of trades.
    pub trades: u64,
}

impl DayAggregate {
    /// Fold a trade into the day (`None`: the day's first trade), or say why it cannot be: a price whose change
    /// from the day's open no decimal can hold (a trade of 1e-20 then one of 1e20) is refused, so every update
    /// this aggregate sends has a change.
    pub fn add(previous: Option<DayAggregate>, trade: &Trade, ts: i64) -> Result<DayAggregate, String> {
        let Some(mut a) = previous else {
            let p = trade.price;
            return Ok(DayAggregate { open: p, open_ts: ts, close: p, close_ts: ts, high: p, low: p, volume: trade.volume, trades: 1 });
        };
        if ts < a.open_ts {
            (a.open, a.open_ts) = (trade.price, ts);
        }
        if ts >= a.close_ts {
            (a.close, a.close_ts) = (trade.price, ts);
        }
        a.high = a.high.max(trade.price);
        a.low = a.low.min(trade.price);
        a.volume = a.volume.checked_add(trade.volume).ok_or_else(|| format!("the day's volume overflows with {} more", trade.volume))?;
        a.trades += 1;
        a.change_pct().map(|_| a).ok_or_else(|| format!("price {} is too far from the day's open to state its change", trade.price))
    }

    /// (close - open) / open * 100, 4 places (`None` when no decimal holds it).
    pub fn change_pct(&self) -> Option<Decimal> {
        let ratio = self.close.checked_sub(self.open)?.checked_div(self.open)?;
        Some(four_places(ratio.checked_mul(Decimal::ONE_HUNDRED)?))
    }
}

/// Topic `stock-daily-stats` (key: `symbol`), one update per change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyStats {
    /// Symbol.
    pub symbol: String,
    /// The trading day in the exchange's time zone.
    pub date: NaiveDate,
    /// First price of the day.
    pub open: Decimal,
    /// Highest.
    pub high: Decimal,
    /// Lowest.
    pub low: Decimal,
    /// Last price of the day so far.
    pub close: Decimal,
    /// Shares traded.
    pub volume: u64,
    /// Trades.
    pub trades: u64,
    /// (close - open) / open * 100, rounded half away from zero to 4 places.
    pub change_pct: Decimal,
}

impl DailyStats {
    /// The statistics of `symbol` on `date` from its aggregate (which [`DayAggregate::add`] keeps within range).
    pub fn of(symbol: &str, date: NaiveDate, a: &DayAggregate) -> Result<Self, String> {
        let change_pct = a.change_pct().ok_or_else(|| format!("the change of {symbol} on {date} overflows"))?;
        Ok(DailyStats {
            symbol: symbol.to_owned(),
            date,
            open: a.open,
            high: a.high,
            low: a.low,
            close: a.close,
            volume: a.volume,
            trades: a.trades,
            change_pct,
        })
    }
}

/// One moving window's running figures, as kept in its window store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovingAggregate {
    /// Lowest price.
    pub min: Decimal,
    /// Highest price.
    pub max: Decimal,
    /// Sum of prices (for the mean).
    pub sum: Decimal,
    /// Trades.
    pub trades: u64,
}

impl MovingAggregate {
    /// Fold a trade in, or say why not (the sum of prices would overflow).
    pub fn add(previous: Option<MovingAggregate>, trade: &Trade) -> Result<MovingAggregate, String> {
        let p = trade.price;
        Ok(match previous {
            None => MovingAggregate { min: p, max: p, sum: p, trades: 1 },
            Some(a) => MovingAggregate {
                min: a.min.min(p),
                max: a.max.max(p),
                sum: a.sum.checked_add(p).ok_or_else(|| format!("price {p} overflows the window's sum of {} prices", a.trades))?,
                trades: a.trades + 1,
            },
        })
    }
}

/// Topic `stock-moving-stats` (key: `symbol`): the book's StockStats, with the max it lacked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovingStats {
    /// Symbol.
    pub symbol: String,
    /// Window start, RFC 3339 UTC.
    pub window_start: String,
    /// Window end (exclusive), RFC 3339 UTC.
    pub window_end: String,
    /// Lowest price.
    pub min: Decimal,
    /// Highest price.
    pub max: Decimal,
    /// Mean trade price, 4 places.
    pub avg: Decimal,
    /// Trades.
    pub trades: u64,
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

impl MovingStats {
    /// The statistics of `symbol` over `window`.
    pub fn of(symbol: &str, window: &Window, a: &MovingAggregate) -> Self {
        MovingStats {
            symbol: symbol.to_owned(),
            window_start: rfc3339(window.start),
            window_end: rfc3339(window.end),
            min: a.min,
            max: a.max,
            avg: four_places(a.sum / Decimal::from(a.trades.max(1))),
            trades: a.trades,
        }
    }
}

/// Topic `stock-daily-changes` (single partition, key: `symbol`): what the ranking (task `2_0`) ranks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyChange {
    /// Symbol.
    pub symbol: String,
    /// Trading day.
    pub date: NaiveDate,
    /// The day's change so far.
    pub change_pct: Decimal,
    /// The day's close so far.
    pub close: Decimal,
    /// Event time of the trade that caused this change.
    pub ts: DateTime<Utc>,
}

/// One entry of a top-10 list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    /// Symbol.
    pub symbol: String,
    /// Its change that day.
    pub change_pct: Decimal,
    /// Its close that day.
    pub close: Decimal,
}

/// Topic `stock-top10` (key: `date`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Top10 {
    /// Trading day.
    pub date: NaiveDate,
    /// Up to 10 symbols with a positive change, largest first (ties: symbol ascending).
    pub gainers: Vec<Ranked>,
    /// Up to 10 symbols with a negative change, most negative first (ties: symbol ascending).
    pub losers: Vec<Ranked>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn change_pct_rounds_half_away_from_zero_to_four_places() {
        assert_eq!(four_places(d("1.23445")).to_string(), "1.2345");
        assert_eq!(four_places(d("-1.23445")).to_string(), "-1.2345");
        assert_eq!(four_places(d("2")).to_string(), "2.0000");
        let a = DayAggregate { open: d("3"), open_ts: 0, close: d("4"), close_ts: 1, high: d("4"), low: d("3"), volume: 1, trades: 2 };
        assert_eq!(a.change_pct().map(|c| c.to_string()), Some("33.3333".into()));
    }

    fn trade(price: &str) -> Trade {
        let ts = DateTime::parse_from_rfc3339("2026-03-09T14:30:00Z").expect("ts");
        Trade { symbol: "X".into(), price: d(price), volume: 1, ts }
    }

    #[test]
    fn a_trade_whose_figures_overflow_is_refused_and_changes_nothing() {
        let day = DayAggregate::add(None, &trade("0.0000000000000000000001"), 0).expect("first trade");
        let refused = DayAggregate::add(Some(day.clone()), &trade("79228162514264337593543950335"), 1);
        assert!(refused.expect_err("refused").contains("too far from the day's open"));
        assert!(DayAggregate::add(Some(day), &trade("1"), 1).is_ok());
        let moving = MovingAggregate::add(None, &trade("79228162514264337593543950335")).expect("first trade");
        assert!(MovingAggregate::add(Some(moving), &trade("1")).expect_err("refused").contains("overflows"));
    }
}
