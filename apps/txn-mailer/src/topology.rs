//! The mailer's topology:
//!
//! ```text
//! transactions -> validate -> by-txn-id (repartition) -> notify [sent-txns, recent-alerts, mailer-stats] -> high-value-alerts
//! ```
//!
//! `validate` rejects what can never be processed (non-positive amount, unknown currency, empty ids): those go to
//! `txn-mailer.dlq`, pointing at the original record. `by-txn-id` repartitions by `txn_id`, the key of the dedupe
//! state: input is keyed by account, or by something else, or not at all, and two copies of one transaction on
//! different partitions must still meet in the same task. `notify` decides, sends, and records.
//!
//! # Exactly one email per `txn_id`, in practice
//!
//! An email is a side effect outside Kafka: it cannot be part of a commit or rolled back (invariant 10,
//! docs/src/invariants.md). So:
//! 1. Before sending, `notify` looks the `txn_id` up in the changelogged `sent-txns` store; if it is there, the
//!    email went out before. If the entry was written for this very input record (the same repartition topic,
//!    partition and offset: a replay after a crash), the audit record is written again, since it may have been
//!    lost with the crash; a repeated transaction (another record with the same `txn_id`) writes nothing, so the
//!    audit topic holds one record per email sent.
//! 2. Otherwise it sends. If the server is down, the record is retried with backoff, its partition waits, and no
//!    offset is committed past it: no alert is lost.
//! 3. Once the server accepted the mail, `notify` writes `sent-txns` and *flushes*: it waits for the broker to
//!    acknowledge that changelog record before anything else happens.
//!
//! The one window left is a crash between the server accepting the mail and that acknowledgement (a broker round
//! trip, about a millisecond here): the record is then processed again after restart and the email goes out a
//! second time, with the same Message-ID so the receiving side can collapse it. Closing the window entirely would
//! need an SMTP server that deduplicates; nothing in SMTP itself allows it.
//!
//! Under at-least-once the audit topic can carry an alert twice after a crash (outputs between the last commit
//! and the crash are written again); `txn_id` identifies duplicates. `seen` in `/stats` can over-count the same way.
//!
//! Under exactly-once (`--guarantee exactly-once`) an acknowledged write is not durable until its transaction
//! commits, so the flush in step 3 makes the runtime commit right after this record instead: the same one-email
//! window, now one commit wide, and the audit topic and `/stats` count each alert once.

use crate::mailer::{MailError, Mailer};
use crate::model::{Alert, Stats, Transaction};
use chrono::Utc;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use std::sync::Arc;
use streamcore::codec::Json;
use streamcore::money::{FxRates, Money};
use streamcore::state::{Order, StoreSpec};
use streamcore::time::EventTime;
use streamcore::{ProcessError, Processor, ProcessorContext, Record, StreamError, Topology, TopologyBuilder};

/// Store: `txn_id` -> the alert sent for it.
pub const SENT_STORE: &str = "sent-txns";
/// Store: `<notified_at millis, zero-padded>-<txn_id>` -> alert, the newest `RECENT_KEPT` per partition.
pub const RECENT_STORE: &str = "recent-alerts";
/// Store: `stats` -> this partition's [`Stats`].
pub const STATS_STORE: &str = "mailer-stats";
/// The repartitioning by `txn_id`: its topic is `<application-id>-by-txn-id-repartition`.
pub const BY_TXN_ID: &str = "by-txn-id";
/// Recent alerts kept per partition for `/alerts/recent`.
pub const RECENT_KEPT: u64 = 1000;
const STATS_KEY: &str = "stats";

/// What the topology needs to decide.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Application id: consumer group and internal-topic prefix.
    pub application_id: String,
    /// Input topic (`transactions`).
    pub input_topic: String,
    /// Audit topic (`high-value-alerts`).
    pub alerts_topic: String,
    /// Alert at or above this.
    pub threshold: Money,
    /// Conversion rates to USD.
    pub fx: FxRates,
    /// Recipient when a transaction names no sales rep.
    pub default_rep: Option<String>,
}

/// A validated transaction with its USD amount and its recipient.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Priced {
    /// The transaction.
    pub txn: Transaction,
    /// Its amount in USD.
    pub amount_usd: Decimal,
    /// Who gets the email: the transaction's sales rep, or the default one.
    pub sales_rep: String,
}

/// Everything that can be known wrong about a transaction is found here, before repartitioning, so its
/// dead-letter copy points at the record the user wrote.
fn validate(fx: &FxRates, default_rep: Option<&str>, txn: Transaction) -> Result<Priced, ProcessError> {
    if txn.txn_id.trim().is_empty() || txn.account_id.trim().is_empty() {
        return Err(ProcessError::Invalid("txn_id and account_id must not be empty".into()));
    }
    if txn.amount <= Decimal::ZERO {
        return Err(ProcessError::Invalid(format!("amount must be positive, got {}", txn.amount)));
    }
    let amount_usd = fx.to_usd(txn.amount, &txn.currency).map_err(|e| ProcessError::Invalid(e.to_string()))?;
    let sales_rep = txn
        .sales_rep
        .clone()
        .or_else(|| default_rep.map(str::to_owned))
        .ok_or_else(|| ProcessError::Invalid("no sales_rep in the transaction and no --default-rep configured".into()))?;
    crate::mailer::check_address(&sales_rep).map_err(|e| ProcessError::Invalid(e.to_string()))?;
    Ok(Priced { txn, amount_usd, sales_rep })
}

/// The processor that decides, sends and records.
pub struct Notify {
    threshold_usd: Decimal,
    mailer: Arc<Mailer>,
}

impl Processor for Notify {
    type In = Priced;
    type Out = Alert;

    fn process(&mut self, r: Record<Priced>, ctx: &mut ProcessorContext<'_, '_, Alert>) -> Result<(), ProcessError> {
        let Priced { txn, amount_usd, sales_rep } = &r.value;
        let mut stats: Stats = ctx.store(STATS_STORE)?.get_json(STATS_KEY)?.unwrap_or_default();
        stats.seen += 1;
        if *amount_usd < self.threshold_usd {
            ctx.store(STATS_STORE)?.put_json(STATS_KEY, &stats)?;
            return Ok(());
        }
        let here = source_of(ctx.position());
        if let Some(sent) = ctx.store(SENT_STORE)?.get_json::<Sent>(&txn.txn_id)? {
            // Sent before, never again. A replay of the record that sent it writes the audit record again (the crash
            // may have lost it; entries from before sources were kept count as replays); another copy nothing.
            ctx.store(STATS_STORE)?.put_json(STATS_KEY, &stats)?;
            if sent.source.as_ref().is_none_or(|s| *s == here) {
                ctx.forward(r.with_value(sent.alert));
            }
            return Ok(());
        }
        let mut alert = Alert {
            txn_id: txn.txn_id.clone(),
            account_id: txn.account_id.clone(),
            amount: txn.amount,
            currency: txn.currency.clone(),
            merchant: txn.merchant.clone(),
            amount_usd: *amount_usd,
            sales_rep: sales_rep.clone(),
            ts: txn.ts,
            notified_at: Utc::now(),
        };
        match self.mailer.send(&alert) {
            Ok(()) => alert.notified_at = Utc::now(),
            Err(e @ MailError::Transient(_)) => return Err(ProcessError::Retry(e.to_string())),
            Err(e) => return Err(ProcessError::Invalid(e.to_string())),
        }
        ctx.store(SENT_STORE)?.put_json(&alert.txn_id, &Sent { alert: alert.clone(), source: Some(here) })?;
        stats.alerted += 1;
        stats.alerted_usd = stats.alerted_usd.saturating_add(alert.amount_usd);
        ctx.store(STATS_STORE)?.put_json(STATS_KEY, &stats)?;
        let recent = ctx.store(RECENT_STORE)?;
        recent.put_json(&format!("{:020}-{}", alert.notified_at.timestamp_millis(), alert.txn_id), &alert)?;
        if stats.alerted > RECENT_KEPT {
            for (oldest, _) in recent.range(Bound::Unbounded, Bound::Unbounded, Order::Ascending, 1)? {
                recent.delete(oldest);
            }
        }
        // Make "sent" durable now, not at the next commit: this is what keeps the duplicate window narrow.
        ctx.flush()?;
        ctx.forward(r.with_value(alert));
        Ok(())
    }
}

/// An entry of `sent-txns`: the alert, and the input record that sent it (`topic/partition/offset`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sent {
    /// The alert as sent.
    #[serde(flatten)]
    pub alert: Alert,
    /// The record that sent it; absent in entries written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn source_of(p: &streamcore::record::SourcePosition) -> String {
    format!("{}/{}/{}", p.topic, p.partition, p.offset)
}

/// The mailer's topology.
pub fn build_topology(settings: &Settings, mailer: Arc<Mailer>) -> Result<Topology, StreamError> {
    let threshold_usd = settings
        .fx
        .to_usd(settings.threshold.amount, &settings.threshold.currency)
        .map_err(|e| StreamError::Config(format!("the threshold: {e} (see --fx)")))?;
    let b = TopologyBuilder::new(settings.application_id.as_str());
    let fx = settings.fx.clone();
    let default_rep = settings.default_rep.clone();
    // ANCHOR: pipeline
    b.source(&settings.input_topic, Json::<Transaction>::new(), |t: &Transaction| EventTime::payload(&t.ts))
        .try_map_values("validate", move |t| validate(&fx, default_rep.as_deref(), t))
        .repartition(BY_TXN_ID, |r: &Record<Priced>| Some(r.value.txn.txn_id.clone()))
        .process(
            "notify",
            &[StoreSpec::persistent(SENT_STORE), StoreSpec::persistent(RECENT_STORE), StoreSpec::persistent(STATS_STORE)],
            move || Notify { threshold_usd, mailer: mailer.clone() },
        )
        .to("alerts-sink", &settings.alerts_topic, Json::new(), |r: &Record<Alert>| Some(r.value.account_id.clone()));
    // ANCHOR_END: pipeline
    b.build()
}
