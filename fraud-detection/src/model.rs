//! The events of the contract: card transactions and card profiles in, fraud alerts out.

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A card transaction, from topic `card-transactions` (key: `card_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardTxn {
    /// Business id.
    pub txn_id: String,
    /// The card; the record key.
    pub card_id: String,
    /// Amount in `currency`; a JSON string or number, read exactly as written (never through a float, never rounded).
    #[serde(deserialize_with = "streamcore::codec::decimal::exact")]
    pub amount: Decimal,
    /// ISO 4217 code.
    pub currency: String,
    /// Merchant name.
    pub merchant: String,
    /// ISO 3166 alpha-2 country of the merchant.
    pub country: String,
    /// Latitude of the merchant, degrees (a coordinate, not money: a float is right here).
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Event time.
    pub ts: DateTime<FixedOffset>,
}

impl CardTxn {
    /// Why this transaction cannot be evaluated, if it cannot (checked before repartitioning).
    pub fn problem(&self) -> Option<String> {
        if self.txn_id.is_empty() || self.card_id.is_empty() {
            return Some("txn_id and card_id must not be empty".into());
        }
        if self.amount <= Decimal::ZERO {
            return Some(format!("amount {} is not positive", self.amount));
        }
        if !(-90.0..=90.0).contains(&self.lat) || !(-180.0..=180.0).contains(&self.lon) {
            return Some(format!("({}, {}) is not a coordinate", self.lat, self.lon));
        }
        None
    }
}

/// A card profile, from the compacted topic `card-profiles` (key: `card_id`; a null value closes the card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The card.
    pub card_id: String,
    /// Its holder.
    pub customer_id: String,
    /// Where the holder lives.
    pub home_country: String,
    /// The most the card may spend in a calendar day, in USD.
    #[serde(deserialize_with = "streamcore::codec::decimal::exact")]
    pub daily_limit: Decimal,
}

/// A rule of the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// More than `--max-txns` transactions on a card within 10 minutes.
    Velocity,
    /// An amount far above the card's own history.
    AmountAnomaly,
    /// An implied speed between consecutive transactions above `--max-speed-kmh`.
    ImpossibleTravel,
    /// The card's spend in its calendar day exceeds its profile's daily limit.
    DailyLimit,
    /// A transaction on a card whose profile was deleted.
    ClosedCard,
    /// A transaction at a merchant on the blocklist (a global table: reference data every instance reads in full).
    BlockedMerchant,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 6] =
        [Rule::Velocity, Rule::AmountAnomaly, Rule::ImpossibleTravel, Rule::DailyLimit, Rule::ClosedCard, Rule::BlockedMerchant];

    /// The name used in alerts, metrics and the evaluation.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Velocity => "velocity",
            Rule::AmountAnomaly => "amount_anomaly",
            Rule::ImpossibleTravel => "impossible_travel",
            Rule::DailyLimit => "daily_limit",
            Rule::ClosedCard => "closed_card",
            Rule::BlockedMerchant => "blocked_merchant",
        }
    }

    /// How strongly the rule alone says "fraud"; rules combine as independent evidence.
    pub fn weight(self) -> f64 {
        match self {
            Rule::Velocity => 0.6,
            Rule::AmountAnomaly => 0.5,
            Rule::ImpossibleTravel => 0.8,
            Rule::DailyLimit => 0.5,
            Rule::ClosedCard => 0.9,
            Rule::BlockedMerchant => 0.7,
        }
    }
}

/// Topic `fraud-alerts` (key: `card_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `fa-<txn_id>`: the same transaction always gets the same alert id, so a replay is recognisable.
    pub alert_id: String,
    /// The transaction.
    pub txn_id: String,
    /// The card.
    pub card_id: String,
    /// The card's holder; `null` when the card has no profile yet.
    pub customer_id: Option<String>,
    /// The rules that fired.
    pub rules: Vec<Rule>,
    /// 1 - prod(1 - weight) over the rules that fired, 0 to 1.
    pub score: f64,
    /// Event time of the transaction.
    pub ts: DateTime<FixedOffset>,
    /// When the detector decided.
    pub detected_at: DateTime<Utc>,
}

/// An entry of the merchant blocklist, topic `merchant-blocklist` (key: the merchant's name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    /// Why it is on the list.
    pub reason: String,
}
