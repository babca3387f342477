//! The topology: the stream-table join at the heart of the chapter.
//!
//! ```text
//! card-profiles -> table [profiles] -> changes -> track-closures [closed-cards]
//! card-transactions -> validate -> by-card (repartition) -> with-profile (join [profiles])
//!     -> with-blocklist (join the global table merchant-blocklist, by merchant)
//!     -> detect [cards, closed-cards, recent-alerts] -> fraud-alerts
//! ```
//!
//! Profiles are a table (latest per card; a null value deletes it). Its *changes* are read back as a stream to
//! remember which cards were closed: a deleted profile is gone from the table, but "closed" must be told apart
//! from "never had one". Transactions are repartitioned by card (so wrongly keyed ones still meet their card's
//! profile and state), joined with the profile, and checked by [`crate::rules`].
//!
//! *A card with no profile yet* is still checked by every rule that needs no profile (velocity, amount, travel);
//! `daily_limit` cannot be, the alert's `customer_id` is null, and the transaction is counted in
//! `fraud_transactions_without_profile_total` and in the card's `without_profile`, so it is never silently lost.

use crate::model::{Alert, Blocked, CardTxn, Profile};
use crate::rules::{score, CardState, Observed, Thresholds};
use chrono::Utc;
use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use streamcore::codec::Json;
use streamcore::money::FxRates;
use streamcore::state::{Order, StoreSpec};
use streamcore::table::Change;
use streamcore::time::EventTime;
use streamcore::{ProcessError, Processor, ProcessorContext, Record, StreamError, TopicNames, Topology, TopologyBuilder};

/// Input: transactions (before `--topic-prefix`).
pub const TRANSACTIONS_TOPIC: &str = "card-transactions";
/// Input: profiles, compacted.
pub const PROFILES_TOPIC: &str = "card-profiles";
/// Input: the merchant blocklist, a global table (created empty when missing).
pub const BLOCKLIST_TOPIC: &str = "merchant-blocklist";
/// Output.
pub const ALERTS_TOPIC: &str = "fraud-alerts";
/// The blocklist's store.
pub const BLOCKLIST_STORE: &str = "merchant-blocklist";
/// Repartition by card: `<application-id>-by-card-repartition`.
pub const BY_CARD: &str = "by-card";
/// The profiles table.
pub const PROFILES_STORE: &str = "profiles";
/// Cards whose profile was deleted.
pub const CLOSED_STORE: &str = "closed-cards";
/// Per-card state of the rules.
pub const CARDS_STORE: &str = "cards";
/// `<event time millis, zero-padded>-<alert_id>` -> alert, about the newest `RECENT_KEPT` per partition.
pub const ALERTS_STORE: &str = "recent-alerts";
const RECENT_KEPT: usize = 1000;

/// What the topology is built from.
#[derive(Clone)]
pub struct Settings {
    /// The application id.
    pub application_id: String,
    /// How the topics are named (the contract's names when both prefixes are empty).
    pub topics: TopicNames,
    /// The rules' thresholds.
    pub thresholds: Thresholds,
    /// Rates to USD (daily limits and statistics are in USD).
    pub fx: FxRates,
    /// Counts transactions on cards without a profile.
    pub without_profile: prometheus::IntCounter,
}

/// A valid transaction with its amount in USD.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Priced {
    /// The transaction.
    pub txn: CardTxn,
    /// Its amount in USD, exact.
    pub amount_usd: Decimal,
}

/// A transaction and its card's profile, if it has one.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The transaction.
    pub priced: Priced,
    /// The profile at the time the transaction is processed.
    pub profile: Option<Profile>,
    /// Why its merchant is blocked, if it is.
    pub blocked: Option<String>,
}

/// The topology.
pub fn build_topology(s: &Settings) -> Result<Topology, StreamError> {
    let b = TopologyBuilder::new(s.application_id.clone());
    // ANCHOR: profiles_table
    let profiles = b.table(&s.topics.input(PROFILES_TOPIC), Json::<Profile>::new(), StoreSpec::persistent(PROFILES_STORE));
    // ANCHOR_END: profiles_table
    let closures = profiles.changes().process("track-closures", &[StoreSpec::persistent(CLOSED_STORE)], || TrackClosures);

    let txns = b.source(&s.topics.input(TRANSACTIONS_TOPIC), Json::<CardTxn>::new(), |t: &CardTxn| EventTime::payload(&t.ts));
    let fx = s.fx.clone();
    let valid = txns.try_map_values("validate", move |txn: CardTxn| {
        if let Some(problem) = txn.problem() {
            return Err(ProcessError::Invalid(problem));
        }
        let amount_usd = fx.to_usd(txn.amount, &txn.currency).map_err(|e| ProcessError::Invalid(e.to_string()))?;
        Ok(Priced { txn, amount_usd })
    });
    // ANCHOR: join
    let by_card = valid.repartition(BY_CARD, |r: &Record<Priced>| Some(r.value.txn.card_id.clone()));
    let with_profile = by_card.join_table("with-profile", &profiles, |r: Record<Priced>, profile: Option<Profile>| Joined {
        priced: r.value,
        profile,
        blocked: None,
    });
    // ANCHOR_END: join
    let blocklist = b.global_table(&s.topics.input(BLOCKLIST_TOPIC), Json::<Blocked>::new(), BLOCKLIST_STORE);
    let joined = with_profile.join_global(
        "with-blocklist",
        &blocklist,
        |r: &Record<Joined>| Some(r.value.priced.txn.merchant.clone()),
        |r: Record<Joined>, blocked: Option<Blocked>| Joined { blocked: blocked.map(|b| b.reason), ..r.value },
    );
    let (thresholds, counter) = (s.thresholds.clone(), s.without_profile.clone());
    let stores = [StoreSpec::persistent(CARDS_STORE), StoreSpec::persistent(CLOSED_STORE), StoreSpec::persistent(ALERTS_STORE)];
    let alerts =
        joined.process("detect", &stores, move || Detector { thresholds: thresholds.clone(), without_profile: counter.clone(), kept: 0 });
    alerts.to("alerts-sink", &s.topics.output(ALERTS_TOPIC), Json::new(), |r: &Record<Alert>| Some(r.value.card_id.clone()));
    drop((profiles, closures, txns, valid, by_card, with_profile, joined, alerts));
    b.build()
}

/// A card whose profile was deleted: since when, and the profile it had.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Closed {
    /// The deletion's record timestamp (a profile has no `ts` of its own).
    pub at: i64,
    /// The profile before the deletion.
    pub profile: Profile,
}

/// A revised transaction's event time, for its alert (UTC: its original offset is not kept).
fn event_time(ms: i64) -> DateTime<FixedOffset> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().fixed_offset()
}

/// Remembers closed cards from the profile table's changes: a deletion closes, a new profile reopens.
///
/// The table is read ahead of the transactions (it is small), so a card's deletion can be applied while its
/// earlier transactions are still on their way. Judged by event time instead, a transaction before the closure
/// is not on a closed card, and is checked against the profile the card had then, which the change carried.
struct TrackClosures;

impl Processor for TrackClosures {
    type In = Change<Profile>;
    type Out = ();

    fn process(&mut self, record: Record<Change<Profile>>, ctx: &mut ProcessorContext<'_, '_, ()>) -> Result<(), ProcessError> {
        let Some(card) = record.key else { return Ok(()) };
        let closed = ctx.store(CLOSED_STORE)?;
        match (&record.value.old, &record.value.new) {
            (Some(old), None) => closed.put_json(&card, &Closed { at: record.time.millis, profile: old.clone() })?,
            (_, Some(_)) => closed.delete(card.into_bytes()),
            (None, None) => {}
        }
        Ok(())
    }
}

/// Applies the rules to each transaction and emits an alert when any fires.
struct Detector {
    thresholds: Thresholds,
    without_profile: prometheus::IntCounter,
    /// Alerts written to the recent-alerts store since the last trim.
    kept: usize,
}

impl Processor for Detector {
    type In = Joined;
    type Out = Alert;

    fn process(&mut self, record: Record<Joined>, ctx: &mut ProcessorContext<'_, '_, Alert>) -> Result<(), ProcessError> {
        let Joined { priced: Priced { txn, amount_usd }, mut profile, blocked } = record.value;
        let card = txn.card_id.clone();
        let mut closed = false;
        if let Some(c) = ctx.store(CLOSED_STORE)?.get_json::<Closed>(&card)? {
            if record.time.millis >= c.at {
                closed = true;
            } else if profile.is_none() {
                profile = Some(c.profile);
            }
        }
        let cards = ctx.store(CARDS_STORE)?;
        let mut state: CardState = cards.get_json(&card)?.unwrap_or_default();
        let observed = Observed {
            txn_id: txn.txn_id.clone(),
            ts: record.time.millis,
            amount_usd,
            lat: txn.lat,
            lon: txn.lon,
            blocked_merchant: blocked.is_some(),
        };
        let verdicts = state
            .observe(&observed, profile.as_ref(), closed, &self.thresholds)
            .map_err(|e| ProcessError::Invalid(format!("amount_usd: {e}")))?;
        cards.put_json(&card, &state)?;
        if profile.is_none() {
            self.without_profile.inc();
        }
        let customer_id = profile.map(|p| p.customer_id);
        for v in verdicts {
            let ts = if v.txn_id == txn.txn_id { txn.ts } else { event_time(v.ts) };
            let alert = Alert {
                alert_id: format!("fa-{}", v.txn_id),
                txn_id: v.txn_id,
                card_id: card.clone(),
                customer_id: customer_id.clone(),
                score: score(&v.rules),
                rules: v.rules,
                ts,
                detected_at: Utc::now(),
            };
            let recent = ctx.store(ALERTS_STORE)?;
            recent.put_json(&format!("{:020}-{}", v.ts.max(0), alert.alert_id), &alert)?;
            self.kept += 1;
            if self.kept >= RECENT_KEPT / 10 {
                self.kept = 0;
                let old = recent.range(Bound::Unbounded, Bound::Unbounded, Order::Descending, usize::MAX)?;
                for (k, _) in old.into_iter().skip(RECENT_KEPT) {
                    recent.delete(k);
                }
            }
            ctx.forward(Record { key: Some(card.clone()), value: alert, time: record.time });
        }
        Ok(())
    }
}
