//! Trades for `stock-ticker`: a seeded random walk per symbol during New York trading hours (09:30 to 16:00 on
//! weekdays), with realistic prices (5 to 500 USD, moving a few basis points per trade) and volumes (odd lots and
//! round lots of 100), plus configurable shares of out-of-order trades (up to two minutes behind), late trades
//! (from the previous trading session, beyond the default 4-hour grace once a session has passed), unkeyed
//! records and malformed ones.

use crate::Generated;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seed: same seed, same records.
    pub seed: u64,
    /// How many records.
    pub count: u64,
    /// Distinct symbols.
    pub symbols: u32,
    /// Event time of the first trade (moved to the next session's open if outside trading hours).
    pub start: DateTime<Utc>,
    /// Event-time spacing between trades, in milliseconds (across all symbols).
    pub spacing_ms: i64,
    /// Share (0..1) of trades stamped up to two minutes behind the stream.
    pub out_of_order_share: f64,
    /// Share (0..1) of trades stamped one session (a day or more) behind the stream.
    pub late_share: f64,
    /// Share (0..1) of records without a key.
    pub unkeyed_share: f64,
    /// Share (0..1) of malformed records.
    pub malformed_share: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 42,
            count: 10_000,
            symbols: 50,
            start: DateTime::parse_from_rfc3339("2026-11-23T14:30:00Z").map(|d| d.to_utc()).unwrap_or_default(),
            spacing_ms: 20,
            out_of_order_share: 0.01,
            late_share: 0.0,
            unkeyed_share: 0.0,
            malformed_share: 0.0,
        }
    }
}

const FAMOUS: [&str; 12] = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "BRK.B", "V", "KO"];
const MALFORMED: [&str; 5] = ["not-json", "negative-price", "zero-volume", "bad-symbol", "missing-ts"];

/// The `i`-th symbol: well-known tickers first, then every three-letter one, then four letters.
pub fn symbol(i: u32) -> String {
    if let Some(s) = FAMOUS.get(i as usize) {
        return (*s).to_owned();
    }
    let n = i - FAMOUS.len() as u32;
    let (width, mut n) = if n < 26u32.pow(3) { (3, n) } else { (4, n - 26u32.pow(3)) };
    let mut letters = vec![b'A'; width];
    for l in letters.iter_mut().rev() {
        *l = b'A' + (n % 26) as u8;
        n /= 26;
    }
    String::from_utf8_lossy(&letters).into_owned()
}

/// The next instant within trading hours at or after `t`.
fn in_session(t: DateTime<Utc>) -> DateTime<Utc> {
    let open = NaiveTime::from_hms_opt(9, 30, 0).unwrap_or_default();
    let close = NaiveTime::from_hms_opt(16, 0, 0).unwrap_or_default();
    let mut local = t.with_timezone(&New_York);
    for _ in 0..10 {
        let weekend = matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
        if !weekend && local.time() >= open && local.time() < close {
            return local.to_utc();
        }
        let next_day = if local.time() >= close || weekend { local.date_naive().succ_opt() } else { Some(local.date_naive()) };
        let Some(day) = next_day else { break };
        match New_York.from_local_datetime(&day.and_time(open)).earliest() {
            Some(next) => local = next,
            None => break,
        }
    }
    local.to_utc()
}

/// The records, lazily.
pub fn generate(opts: &Options) -> impl Iterator<Item = Generated> + use<> {
    let o = opts.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let n = o.symbols.max(1);
    // Prices in cents, log-uniform from 5 to 500 USD.
    let mut cents: Vec<i64> = (0..n).map(|_| rng.random_range(500f64.ln()..50_000f64.ln()).exp() as i64).collect();
    let mut clock = in_session(o.start);
    (0..o.count).map(move |_| {
        clock = in_session(clock + Duration::milliseconds(o.spacing_ms));
        let i = rng.random_range(0..n);
        let price = &mut cents[i as usize];
        // A step of up to 20 basis points either way, never below a cent.
        *price = (*price + (*price as f64 * rng.random_range(-0.002..0.002)).round() as i64).max(1);
        let volume: u64 = if rng.random_bool(0.6) { 100 * rng.random_range(1..20) } else { rng.random_range(1..100) };
        let mut ts = clock;
        if rng.random_bool(o.late_share.clamp(0.0, 1.0)) {
            ts -= Duration::hours(30);
        } else if rng.random_bool(o.out_of_order_share.clamp(0.0, 1.0)) {
            ts -= Duration::milliseconds(rng.random_range(1..120_000));
        }
        let sym = symbol(i);
        let mut v = serde_json::json!({
            "symbol": sym,
            "price": Decimal::new(*price, 2).to_string(),
            "volume": volume,
            "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        let malformed = rng.random_bool(o.malformed_share.clamp(0.0, 1.0)).then(|| MALFORMED[rng.random_range(0..MALFORMED.len())]);
        let value = match malformed {
            Some("not-json") => format!("{sym},{price},{volume}").into_bytes(),
            Some(kind) => {
                match kind {
                    "negative-price" => v["price"] = serde_json::json!(format!("-{}", Decimal::new(*price, 2))),
                    "zero-volume" => v["volume"] = serde_json::json!(0),
                    "bad-symbol" => v["symbol"] = serde_json::json!(""),
                    _ => drop(v.as_object_mut().map(|m| m.remove("ts"))),
                }
                v.to_string().into_bytes()
            }
            None => v.to_string().into_bytes(),
        };
        let key = (!rng.random_bool(o.unkeyed_share.clamp(0.0, 1.0))).then_some(sym);
        Generated { key, value, malformed }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_distinct_and_look_like_tickers() {
        let all: std::collections::BTreeSet<String> = (0..2000).map(symbol).collect();
        assert_eq!(all.len(), 2000);
        assert!(all.iter().all(|s| (1..=5).contains(&s.len()) && s.chars().all(|c| c.is_ascii_uppercase() || c == '.')));
    }

    #[test]
    fn same_seed_same_trades_within_trading_hours_and_shares_hold() {
        let o = Options { count: 20_000, unkeyed_share: 0.05, malformed_share: 0.02, spacing_ms: 2_000, ..Options::default() };
        let a: Vec<_> = generate(&o).collect();
        assert_eq!(a, generate(&o).collect::<Vec<_>>());
        assert_ne!(a, generate(&Options { seed: 7, ..o.clone() }).collect::<Vec<_>>());
        let unkeyed = a.iter().filter(|g| g.key.is_none()).count();
        assert!((800..1200).contains(&unkeyed), "about 5% unkeyed, got {unkeyed}");
        let bad = a.iter().filter(|g| g.malformed.is_some()).count();
        assert!((300..500).contains(&bad), "about 2% malformed, got {bad}");
        let mut days = std::collections::BTreeSet::new();
        for g in a.iter().filter(|g| g.malformed.is_none()) {
            let v: serde_json::Value = serde_json::from_slice(&g.value).expect("JSON");
            let price: Decimal = v["price"].as_str().expect("price").parse().expect("decimal");
            assert!(price > Decimal::ZERO);
            let ts = DateTime::parse_from_rfc3339(v["ts"].as_str().expect("ts")).expect("ts").with_timezone(&New_York);
            assert!(!matches!(ts.weekday(), Weekday::Sat | Weekday::Sun), "no weekend trades: {ts}");
            let minutes = ts.time().signed_duration_since(NaiveTime::from_hms_opt(9, 28, 0).expect("time")).num_minutes();
            assert!((0..=392).contains(&minutes), "within the session (out-of-order trades may precede the open): {ts}");
            days.insert(ts.date_naive());
        }
        assert!(days.len() >= 2, "20,000 trades 2 s apart span more than one session: {days:?}");
    }
}
