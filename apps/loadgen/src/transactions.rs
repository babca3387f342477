//! Account transactions: many small everyday amounts in a few currencies, a configurable share of high-value ones
//! (10,000 to 250,000 USD-equivalent), and optionally a share of malformed records of every kind the contract names.

use crate::Generated;
use chrono::{DateTime, Duration, Utc};
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
    /// Distinct accounts.
    pub accounts: u32,
    /// Share (0..1) of high-value transactions.
    pub high_value_share: f64,
    /// Share (0..1) of malformed records.
    pub malformed_share: f64,
    /// Event time of the first record.
    pub start: DateTime<Utc>,
    /// Event-time spacing between records, in milliseconds.
    pub spacing_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 42,
            count: 1000,
            accounts: 1000,
            high_value_share: 0.02,
            malformed_share: 0.0,
            start: DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z").map(|d| d.to_utc()).unwrap_or_default(),
            spacing_ms: 250,
        }
    }
}

/// Currencies and how many units make one USD (for realistic amounts; the mailer's own `--fx` decides).
const CURRENCIES: [(&str, u32, i64); 4] = [("USD", 80, 1), ("EUR", 12, 1), ("GBP", 6, 1), ("JPY", 2, 150)];
const MERCHANTS: [&str; 8] = [
    "Acme Travel",
    "Globex Electronics",
    "Initech Software",
    "Umbrella Pharmacy",
    "Hooli Cloud",
    "Stark Motors",
    "Wayne Jewelers",
    "Tyrell Art",
];
const MALFORMED: [&str; 5] = ["not-json", "missing-ts", "negative-amount", "unknown-currency", "bad-ts"];

/// The records, lazily.
pub fn generate(opts: &Options) -> impl Iterator<Item = Generated> + use<> {
    let opts = opts.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    (0..opts.count).map(move |i| one(&mut rng, &opts, i))
}

fn one(rng: &mut ChaCha8Rng, o: &Options, i: u64) -> Generated {
    let account = format!("acc-{}", rng.random_range(0..o.accounts.max(1)));
    let high = rng.random_bool(o.high_value_share.clamp(0.0, 1.0));
    let roll = rng.random_range(0..100);
    let mut acc = 0;
    let (currency, per_usd) = CURRENCIES
        .iter()
        .find(|(_, w, _)| {
            acc += w;
            roll < acc
        })
        .map_or(("USD", 1), |(c, _, p)| (*c, *p));
    // USD cents: everyday amounts log-uniform from 5.00 to 2,500.00; high-value 10,000.00 to 250,000.00.
    let usd_cents: i64 =
        if high { rng.random_range(1_000_000..25_000_000) } else { (rng.random_range(500f64.ln()..250_000f64.ln())).exp() as i64 };
    let amount = if per_usd == 1 { Decimal::new(usd_cents, 2) } else { Decimal::new(usd_cents * per_usd / 100, 0) };
    let ts = o.start + Duration::milliseconds(o.spacing_ms * i as i64 + rng.random_range(0..o.spacing_ms.max(1)));
    let mut v = serde_json::json!({
        "txn_id": format!("t-{:08}-{:x}", i, o.seed),
        "account_id": account,
        "amount": amount.to_string(),
        "currency": currency,
        "merchant": MERCHANTS[rng.random_range(0..MERCHANTS.len())],
        "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if rng.random_range(0..10) > 0 {
        v["sales_rep"] = serde_json::json!(format!("rep-{}@example.com", rng.random_range(0..20)));
    }
    let malformed = rng.random_bool(o.malformed_share.clamp(0.0, 1.0)).then(|| MALFORMED[rng.random_range(0..MALFORMED.len())]);
    let value = match malformed {
        Some("not-json") => b"{\"txn_id\": \"broken".to_vec(),
        Some(kind) => {
            match kind {
                "missing-ts" => drop(v.as_object_mut().map(|m| m.remove("ts"))),
                "negative-amount" => v["amount"] = serde_json::json!(format!("-{amount}")),
                "unknown-currency" => v["currency"] = serde_json::json!("XXX"),
                _ => v["ts"] = serde_json::json!("24/11/2026 09:00"),
            }
            v.to_string().into_bytes()
        }
        None => v.to_string().into_bytes(),
    };
    Generated { key: Some(account), value, malformed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_and_shares_roughly_hold() {
        let o = Options { count: 5000, malformed_share: 0.05, ..Options::default() };
        let a: Vec<_> = generate(&o).collect();
        let b: Vec<_> = generate(&o).collect();
        assert_eq!(a, b);
        let other: Vec<_> = generate(&Options { seed: 7, ..o.clone() }).collect();
        assert_ne!(a, other);
        let bad = a.iter().filter(|g| g.malformed.is_some()).count();
        assert!((150..350).contains(&bad), "about 5% malformed, got {bad}");
        for g in a.iter().filter(|g| g.malformed.is_none()) {
            let v: serde_json::Value = serde_json::from_slice(&g.value).expect("valid records are JSON");
            let amount: Decimal = v["amount"].as_str().expect("amount string").parse().expect("decimal");
            assert!(amount > Decimal::ZERO);
            assert_eq!(v["account_id"].as_str(), g.key.as_deref(), "keyed by account");
        }
    }
}
