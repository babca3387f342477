//! The fraud detector (validate, repartition by card, join with the profile table, the rules on per-card state,
//! alerts) on pre-loaded transactions with every profile loaded, beside the plain loop (decode, validate,
//! encode, produce).

use crate::memory::beside_plain_loop;
use crate::plain_loop;
use fraud_detection::model::CardTxn;
use fraud_detection::topology::{build_topology, Settings, BLOCKLIST_TOPIC, BY_CARD, PROFILES_TOPIC, TRANSACTIONS_TOPIC};
use std::time::Instant;
use streamcore::state::budget::MemoryBudget;
use streamcore::testkit::kafka::{create_topic, unique};

fn validated(t: CardTxn) -> CardTxn {
    CardTxn { currency: t.currency.to_ascii_uppercase(), ..t }
}

pub(crate) fn run(bs: &str, n: u64, partitions: i32, cards: u32, budget: MemoryBudget) -> anyhow::Result<()> {
    let prefix = format!("{}.", unique("bench"));
    let (txns, profiles, blocklist) =
        (format!("{prefix}{TRANSACTIONS_TOPIC}"), format!("{prefix}{PROFILES_TOPIC}"), format!("{prefix}{BLOCKLIST_TOPIC}"));
    create_topic(bs, &txns, partitions, false);
    create_topic(bs, &profiles, partitions, true);
    create_topic(bs, &blocklist, 1, true);
    let opts =
        loadgen::cards::Options { seed: 1, cards, transactions: n, spacing_ms: 200, ..Default::default() }.ending_by(chrono::Utc::now());
    let started = Instant::now();
    let sent = fraud_eval::produce(bs, [&txns, &profiles, &blocklist], loadgen::cards::generate(&opts), None)?;
    let txn_count = sent - u64::from(cards) - others(&opts);
    println!(
        "pre-loaded {cards} profiles and {txn_count} transactions ({partitions} partitions) in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    beside_plain_loop(
        "transactions",
        &format!("fraud-detection, --state-memory {budget}"),
        || plain_loop(bs, &txns, txn_count, validated),
        || detector(bs, &prefix, txn_count, budget),
    )
}

/// Events that are not transactions, beyond the profiles: deletions and the blocklist.
fn others(opts: &loadgen::cards::Options) -> u64 {
    use loadgen::cards::CardTopic;
    loadgen::cards::generate(opts)
        .filter(|e| e.topic == CardTopic::Blocklist || (e.topic == CardTopic::Profiles && e.value.is_none()))
        .count() as u64
}

fn detector(bs: &str, prefix: &str, n: u64, state_memory: MemoryBudget) -> anyhow::Result<f64> {
    let app = unique("bench-fraud");
    let settings = Settings {
        application_id: app.clone(),
        topics: streamcore::TopicNames::prefixed(prefix),
        thresholds: Default::default(),
        fx: Default::default(),
        without_profile: prometheus::IntCounter::new("without_profile", "unregistered")?,
    };
    let input = format!("{prefix}{TRANSACTIONS_TOPIC}");
    let repartition = streamcore::topology::repartition_topic(&app, BY_CARD);
    let secs = crate::timed::through_repartition(bs, build_topology(&settings)?, &input, &repartition, n, state_memory)?;
    println!("fraud-detection: {n} transactions in {secs:.2}s");
    Ok(n as f64 / secs)
}
