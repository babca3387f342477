//! The events of the contract: a transaction in, a high-value alert out, and the running stats.

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A card or account transaction, from topic `transactions` (key: `account_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Business id; the dedupe key.
    pub txn_id: String,
    /// The account; the record key.
    pub account_id: String,
    /// Amount in `currency`; a JSON string or number, read exactly as written (never through a float, never rounded).
    #[serde(deserialize_with = "streamcore::codec::decimal::exact")]
    pub amount: Decimal,
    /// ISO 4217 code.
    pub currency: String,
    /// Merchant name.
    pub merchant: String,
    /// Who to tell; `--default-rep` when absent.
    #[serde(default)]
    pub sales_rep: Option<String>,
    /// Event time.
    pub ts: DateTime<FixedOffset>,
}

/// One email sent, as recorded on topic `high-value-alerts` (key: `account_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The transaction.
    pub txn_id: String,
    /// The account.
    pub account_id: String,
    /// Original amount.
    pub amount: Decimal,
    /// Original currency.
    pub currency: String,
    /// Merchant (a field beyond the contract's, for the email body).
    pub merchant: String,
    /// Amount converted to USD, exact (no rounding).
    pub amount_usd: Decimal,
    /// Where the email went.
    pub sales_rep: String,
    /// Event time of the transaction.
    pub ts: DateTime<FixedOffset>,
    /// When the SMTP server accepted the email.
    pub notified_at: DateTime<Utc>,
}

/// Running totals of one task (partition); `/stats` adds them up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Valid transactions processed.
    pub seen: u64,
    /// Emails sent.
    pub alerted: u64,
    /// Their total in USD (a running figure for `/stats`: it stops at the largest decimal, about 7.9e28, rather
    /// than overflow; every email states its own exact amount).
    pub alerted_usd: Decimal,
}

impl Stats {
    /// Adds `other`'s totals: one task's (or one instance's) to the sum `/stats` answers.
    pub fn add(&mut self, other: &Stats) {
        self.seen += other.seen;
        self.alerted += other.alerted;
        self.alerted_usd = self.alerted_usd.saturating_add(other.alerted_usd);
    }
}
