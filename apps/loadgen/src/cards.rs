//! Card traffic for `fraud-detection`, labelled. Every card has a holder with habits: a home city (all normal
//! transactions within a few km of it, at least ten minutes apart), a typical amount (each normal amount within
//! a factor of about two of it), and a daily limit far above a normal day's spend. Frauds of each rule's pattern
//! are injected at a configurable rate:
//!
//! - `velocity`: seven transactions within a few minutes;
//! - `amount_anomaly`: one amount 8 to 15 times the card's typical one;
//! - `impossible_travel`: a transaction in a city thousands of km away, minutes after one at home;
//! - `daily_limit`: a day of many moderate transactions that pushes the spend past the limit;
//! - `closed_card`: the card's profile deleted, then a transaction on it;
//! - `blocked_merchant`: a transaction at the merchant the generator put on the blocklist first.
//!
//! The ground truth ([`CardEvent::expected`]) never travels in what the service reads: it is returned beside
//! the records. Velocity, daily spend and closed cards are labelled by the generator's own bookkeeping of what
//! it produced (the rule's definition applied to the truth); amount and travel frauds by what it injected.

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use std::collections::VecDeque;

/// Which input topic an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardTopic {
    /// `card-profiles`.
    Profiles,
    /// `card-transactions`.
    Transactions,
    /// `merchant-blocklist`.
    Blocklist,
}

/// One record to produce, and what the detector should say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct CardEvent {
    /// The topic.
    pub topic: CardTopic,
    /// Record key.
    pub key: Option<String>,
    /// Record value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
    /// When it happened (ms): the transaction's `ts`, or when a profile was created or deleted. Produce it as the
    /// record timestamp: a profile has no `ts` field, so the record timestamp is its event time.
    pub ts: i64,
    /// For a transaction: its id.
    pub txn_id: Option<String>,
    /// The rules that should fire on it (empty: legitimate).
    pub expected: Vec<&'static str>,
    /// `Some(kind)` for a deliberately malformed record.
    pub malformed: Option<&'static str>,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seed: same seed, same records.
    pub seed: u64,
    /// Cards (each with a profile, produced first).
    pub cards: u32,
    /// Transactions (normal and fraudulent; malformed ones come on top).
    pub transactions: u64,
    /// Share (0..1) of steps that inject a fraud pattern instead of a normal transaction.
    pub fraud_rate: f64,
    /// Share (0..1) of extra malformed records.
    pub malformed_share: f64,
    /// Share (0..1) of transactions keyed by the customer instead of the card.
    pub wrong_key_share: f64,
    /// Event time of the first step.
    pub start: DateTime<Utc>,
    /// Event-time milliseconds between steps.
    pub spacing_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 42,
            cards: 2000,
            transactions: 100_000,
            fraud_rate: 0.01,
            malformed_share: 0.0,
            wrong_key_share: 0.0,
            start: DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").map(|d| d.to_utc()).unwrap_or_default(),
            spacing_ms: 30_000,
        }
    }
}

impl Options {
    /// These options with the start moved, by whole days (so the same seed gives the same records whenever it
    /// runs: calendar days matter), far enough back that the last event is at least 12 hours before `now`. The
    /// broker refuses record timestamps more than an hour ahead of its clock, and an injected pattern (a day of
    /// spending) reaches up to about six hours beyond the last step.
    pub fn ending_by(mut self, now: DateTime<Utc>) -> Self {
        let span = self.spacing_ms.saturating_mul(self.transactions as i64 + 10);
        let latest_start = now - chrono::Duration::milliseconds(span) - chrono::Duration::hours(12);
        let days = (latest_start - self.start).num_milliseconds().div_euclid(86_400_000);
        self.start += chrono::Duration::days(days);
        self
    }
}

const CITIES: [(&str, &str, f64, f64); 16] = [
    ("New York", "US", 40.71, -74.01),
    ("Chicago", "US", 41.88, -87.63),
    ("Los Angeles", "US", 34.05, -118.24),
    ("Toronto", "CA", 43.65, -79.38),
    ("Mexico City", "MX", 19.43, -99.13),
    ("Sao Paulo", "BR", -23.55, -46.63),
    ("London", "GB", 51.51, -0.13),
    ("Paris", "FR", 48.86, 2.35),
    ("Berlin", "DE", 52.52, 13.40),
    ("Madrid", "ES", 40.42, -3.70),
    ("Seoul", "KR", 37.57, 126.98),
    ("Tokyo", "JP", 35.68, 139.69),
    ("Singapore", "SG", 1.35, 103.82),
    ("Sydney", "AU", -33.87, 151.21),
    ("Mumbai", "IN", 19.08, 72.88),
    ("Johannesburg", "ZA", -26.20, 28.05),
];
/// The merchant on the blocklist.
pub const BLOCKED_MERCHANT: &str = "Shady Electronics";
const MERCHANTS: [&str; 6] = ["Corner Grocery", "City Fuel", "Book Nook", "Cafe Central", "Metro Pharmacy", "Hardware Depot"];
const MALFORMED: [&str; 4] = ["not-json", "negative-amount", "unknown-currency", "bad-coordinates"];
const TEN_MINUTES: i64 = 10 * 60_000;

struct Card {
    id: String,
    customer: String,
    city: usize,
    lat: f64,
    lon: f64,
    /// Typical amount in cents.
    typical: f64,
    limit: Decimal,
    /// Event times of its transactions (ms), for the velocity truth.
    times: VecDeque<i64>,
    /// Spend per UTC day, for the daily-limit truth.
    day: (i64, Decimal),
    history: u32,
    busy_until: i64,
    closed: bool,
}

impl CardEvent {
    /// The record to produce, to its topic (`[transactions, profiles, blocklist]`), with the event time as record
    /// timestamp.
    pub fn outgoing(self, [transactions, profiles, blocklist]: [&str; 3]) -> crate::produce::Outgoing {
        let topic = match self.topic {
            CardTopic::Transactions => transactions,
            CardTopic::Profiles => profiles,
            CardTopic::Blocklist => blocklist,
        };
        crate::produce::Outgoing { topic: topic.to_owned(), key: self.key, value: self.value, timestamp: Some(self.ts) }
    }
}

/// The labelled records, lazily: every profile first, then transactions.
pub struct Generator {
    o: Options,
    rng: ChaCha8Rng,
    cards: Vec<Card>,
    clock: i64,
    txns: u64,
    queue: VecDeque<CardEvent>,
}

/// The records for `opts`.
pub fn generate(opts: &Options) -> Generator {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let cards: Vec<Card> = (0..opts.cards.max(1))
        .map(|i| {
            let city = rng.random_range(0..CITIES.len());
            let (_, _, lat, lon) = CITIES[city];
            let typical = rng.random_range(1500f64.ln()..15_000f64.ln()).exp();
            let limit = Decimal::from(((typical * 30.0 / 100.0 / 100.0).ceil() as i64).max(5) * 100);
            Card {
                id: format!("card-{i:06}"),
                customer: format!("cust-{:06}", i / 2),
                city,
                lat: lat + rng.random_range(-0.05..0.05),
                lon: lon + rng.random_range(-0.05..0.05),
                typical,
                limit,
                times: VecDeque::new(),
                day: (i64::MIN, Decimal::ZERO),
                history: 0,
                busy_until: i64::MIN,
                closed: false,
            }
        })
        .collect();
    let blocked = serde_json::json!({"reason": "chargebacks"}).to_string().into_bytes();
    let blocklist = CardEvent {
        topic: CardTopic::Blocklist,
        key: Some(BLOCKED_MERCHANT.to_owned()),
        value: Some(blocked),
        ts: opts.start.timestamp_millis(),
        txn_id: None,
        expected: Vec::new(),
        malformed: None,
    };
    let queue = std::iter::once(blocklist)
        .chain(cards.iter().map(|c| {
            let v = serde_json::json!({"card_id": c.id, "customer_id": c.customer, "home_country": CITIES[c.city].1, "daily_limit": c.limit.to_string()});
            let ts = opts.start.timestamp_millis();
            CardEvent { topic: CardTopic::Profiles, key: Some(c.id.clone()), value: Some(v.to_string().into_bytes()), ts, txn_id: None, expected: Vec::new(), malformed: None }
        }))
        .collect();
    Generator { o: opts.clone(), rng, cards, clock: opts.start.timestamp_millis(), txns: 0, queue }
}

impl Iterator for Generator {
    type Item = CardEvent;

    fn next(&mut self) -> Option<CardEvent> {
        while self.queue.is_empty() && self.txns < self.o.transactions {
            self.step();
        }
        self.queue.pop_front()
    }
}

impl Generator {
    /// One step of the clock: a normal transaction, or an injected fraud pattern, or nothing (every card busy).
    fn step(&mut self) {
        self.clock += self.o.spacing_ms;
        if self.rng.random_bool(self.o.malformed_share.clamp(0.0, 1.0)) {
            self.malformed();
        }
        let fraud = self.rng.random_bool(self.o.fraud_rate.clamp(0.0, 1.0));
        let Some(card) = self.pick(if fraud { 20 } else { 0 }) else { return };
        if !fraud {
            let amount = self.normal_amount(card);
            self.txn(card, self.clock, amount, None);
            return;
        }
        let t = self.clock;
        match self.rng.random_range(0..6) {
            0 => {
                let mut at = t;
                for _ in 0..7 {
                    let amount = self.normal_amount(card);
                    self.txn(card, at, amount, None);
                    at += self.rng.random_range(20_000..60_000);
                }
            }
            1 => {
                let amount = cents(self.cards[card].typical * self.rng.random_range(8.0..15.0));
                self.txn_labelled(card, t, amount, None, "amount_anomaly");
            }
            2 => {
                let amount = self.normal_amount(card);
                self.txn(card, t, amount, None);
                let home = self.cards[card].city;
                let far = loop {
                    let c = self.rng.random_range(0..CITIES.len());
                    let (_, _, la, lo) = CITIES[c];
                    let (_, _, hla, hlo) = CITIES[home];
                    if distance_km(la, lo, hla, hlo) > 2500.0 {
                        break c;
                    }
                };
                let later = t + self.rng.random_range(20..90) * 60_000;
                let amount = self.normal_amount(card);
                self.txn_labelled(card, later, amount, Some(far), "impossible_travel");
            }
            3 => {
                let mut at = t;
                let mut extra = 2;
                while extra > 0 {
                    let amount = cents(self.cards[card].typical * self.rng.random_range(1.5..2.0));
                    let over = self.spend_after(card, at, amount) > self.cards[card].limit;
                    self.txn(card, at, amount, None);
                    if over {
                        extra -= 1;
                    }
                    at += self.rng.random_range(12..20) * 60_000;
                }
            }
            4 => {
                let amount = self.normal_amount(card);
                self.txn_at(card, t, amount, None, BLOCKED_MERCHANT, Some("blocked_merchant"));
            }
            _ => {
                let id = self.cards[card].id.clone();
                self.queue.push_back(CardEvent {
                    topic: CardTopic::Profiles,
                    key: Some(id),
                    value: None,
                    ts: t,
                    txn_id: None,
                    expected: Vec::new(),
                    malformed: None,
                });
                self.cards[card].closed = true;
                let later = t + self.rng.random_range(1..10) * 60_000;
                let amount = self.normal_amount(card);
                self.txn(card, later, amount, None);
            }
        }
    }

    /// A random card that is open, idle for ten minutes and has at least `history` transactions.
    fn pick(&mut self, history: u32) -> Option<usize> {
        for _ in 0..50 {
            let i = self.rng.random_range(0..self.cards.len());
            let c = &self.cards[i];
            if !c.closed && c.busy_until <= self.clock - TEN_MINUTES && c.history >= history {
                return Some(i);
            }
        }
        None
    }

    /// Within a factor of about two of the card's typical amount (log-normal, sigma 0.3).
    fn normal_amount(&mut self, card: usize) -> Decimal {
        let (u1, u2): (f64, f64) = (self.rng.random_range(f64::EPSILON..1.0), self.rng.random_range(0.0..1.0));
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        cents(self.cards[card].typical * (0.3 * z.clamp(-3.0, 3.0)).exp())
    }

    fn spend_after(&self, card: usize, at: i64, amount: Decimal) -> Decimal {
        let c = &self.cards[card];
        let day = at.div_euclid(86_400_000);
        if c.day.0 == day {
            c.day.1 + amount
        } else {
            amount
        }
    }

    fn txn(&mut self, card: usize, at: i64, amount: Decimal, city: Option<usize>) {
        let merchant = MERCHANTS[self.rng.random_range(0..MERCHANTS.len())];
        self.txn_at(card, at, amount, city, merchant, None)
    }

    fn txn_labelled(&mut self, card: usize, at: i64, amount: Decimal, city: Option<usize>, injected: &'static str) {
        let merchant = MERCHANTS[self.rng.random_range(0..MERCHANTS.len())];
        self.txn_at(card, at, amount, city, merchant, Some(injected))
    }

    /// A transaction, labelled with every rule its pattern satisfies.
    fn txn_at(&mut self, card: usize, at: i64, amount: Decimal, city: Option<usize>, merchant: &str, injected: Option<&'static str>) {
        self.txns += 1;
        let spend = self.spend_after(card, at, amount);
        let (lat, lon, country) = match city {
            Some(c) => (CITIES[c].2, CITIES[c].3, CITIES[c].1),
            None => {
                let c = &self.cards[card];
                (c.lat + self.rng.random_range(-0.02..0.02), c.lon + self.rng.random_range(-0.02..0.02), CITIES[c.city].1)
            }
        };
        let wrong_key = self.rng.random_bool(self.o.wrong_key_share.clamp(0.0, 1.0));
        let c = &mut self.cards[card];
        let mut expected = Vec::new();
        while c.times.front().is_some_and(|&t| t <= at - TEN_MINUTES) {
            c.times.pop_front();
        }
        if c.times.len() + 1 > 5 {
            expected.push("velocity");
        }
        expected.extend(injected);
        if spend > c.limit {
            expected.push("daily_limit");
        }
        if c.closed {
            expected.push("closed_card");
        }
        c.times.push_back(at);
        c.day = (at.div_euclid(86_400_000), spend);
        c.history += 1;
        c.busy_until = c.busy_until.max(at);
        let txn_id = format!("tx-{:09}-{:x}", self.txns, self.o.seed);
        let ts = DateTime::<Utc>::from_timestamp_millis(at).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let v = serde_json::json!({
            "txn_id": txn_id, "card_id": c.id, "amount": amount.to_string(), "currency": "USD", "merchant": merchant,
            "country": country, "lat": (lat * 1e5).round() / 1e5, "lon": (lon * 1e5).round() / 1e5, "ts": ts,
        });
        let key = Some(if wrong_key { c.customer.clone() } else { c.id.clone() });
        self.queue.push_back(CardEvent {
            topic: CardTopic::Transactions,
            key,
            value: Some(v.to_string().into_bytes()),
            ts: at,
            txn_id: Some(txn_id),
            expected,
            malformed: None,
        });
    }

    /// A malformed transaction record, outside every card's bookkeeping.
    fn malformed(&mut self) {
        let kind = MALFORMED[self.rng.random_range(0..MALFORMED.len())];
        let card = &self.cards[self.rng.random_range(0..self.cards.len())];
        let ts = DateTime::<Utc>::from_timestamp_millis(self.clock).unwrap_or_default().to_rfc3339();
        let mut v = serde_json::json!({"txn_id": format!("bad-{}", self.clock), "card_id": card.id, "amount": "12.50", "currency": "USD",
            "merchant": "Nowhere", "country": "US", "lat": 40.0, "lon": -74.0, "ts": ts});
        let value = match kind {
            "not-json" => b"{\"txn_id\": ".to_vec(),
            "negative-amount" => {
                v["amount"] = serde_json::json!("-12.50");
                v.to_string().into_bytes()
            }
            "unknown-currency" => {
                v["currency"] = serde_json::json!("XXX");
                v.to_string().into_bytes()
            }
            _ => {
                v["lat"] = serde_json::json!(123.0);
                v.to_string().into_bytes()
            }
        };
        self.queue.push_back(CardEvent {
            topic: CardTopic::Transactions,
            key: Some(card.id.clone()),
            value: Some(value),
            ts: self.clock,
            txn_id: None,
            expected: Vec::new(),
            malformed: Some(kind),
        });
    }
}

/// An amount of cents as a decimal of dollars, at least one cent.
fn cents(cents: f64) -> Decimal {
    Decimal::new(cents.round().max(1.0) as i64, 2)
}

/// Great-circle distance in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0 * 2.0 * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_come_first_and_every_rule_is_injected_reproducibly() {
        let o = Options { cards: 200, transactions: 20_000, fraud_rate: 0.02, malformed_share: 0.01, ..Options::default() };
        let a: Vec<CardEvent> = generate(&o).collect();
        assert_eq!(a, generate(&o).collect::<Vec<_>>());
        assert_eq!(a[0].topic, CardTopic::Blocklist);
        assert!(a[1..201].iter().all(|e| e.topic == CardTopic::Profiles && e.value.is_some()));
        let txns = a.iter().filter(|e| e.topic == CardTopic::Transactions && e.malformed.is_none()).count();
        assert_eq!(txns, 20_000);
        for rule in ["velocity", "amount_anomaly", "impossible_travel", "daily_limit", "closed_card", "blocked_merchant"] {
            let n = a.iter().filter(|e| e.expected.contains(&rule)).count();
            assert!(n >= 20, "{rule}: {n} labelled");
        }
        let legit = a.iter().filter(|e| e.topic == CardTopic::Transactions && e.expected.is_empty()).count();
        assert!(legit > 18_000);
        assert!(a.iter().any(|e| e.malformed.is_some()));
    }
}
