//! Each rule through the test driver, with borderline cases on both sides of its threshold; profile changes and
//! deletions mid-stream; out-of-order transactions; malformed input.

use fraud_detection::model::{Alert, Rule};
use fraud_detection::rules::Thresholds;
use fraud_detection::topology::{build_topology, Settings, ALERTS_TOPIC, PROFILES_TOPIC, TRANSACTIONS_TOPIC};
use serde_json::json;
use streamcore::task::Outcome;
use streamcore::testkit::TopologyTestDriver;
use streamcore::time::RecordTimestamp;

fn settings() -> Settings {
    Settings {
        application_id: "fraud-detection".into(),
        topics: Default::default(),
        thresholds: Thresholds::default(),
        fx: "EUR=1.10".parse().expect("fx"),
        without_profile: prometheus::IntCounter::new("t", "t").expect("counter"),
    }
}

fn driver() -> TopologyTestDriver {
    TopologyTestDriver::new(build_topology(&settings()).expect("topology"))
}

const T0: i64 = 1_790_000_000_000; // 2026-09-21T...Z, a Monday
const MIN: i64 = 60_000;

fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).expect("ts").to_rfc3339()
}

fn profile(d: &mut TopologyTestDriver, card: &str, limit: &str, at: i64) {
    let v = json!({"card_id": card, "customer_id": format!("cust-{card}"), "home_country": "US", "daily_limit": limit});
    d.pipe_with(PROFILES_TOPIC, 0, Some(card), Some(v.to_string().as_bytes()), RecordTimestamp::CreateTime(at)).expect("profile");
}

fn close(d: &mut TopologyTestDriver, card: &str, at: i64) {
    d.pipe_with(PROFILES_TOPIC, 0, Some(card), None, RecordTimestamp::CreateTime(at)).expect("tombstone");
}

/// Pipes a transaction and returns the rules of its alert (empty: none).
fn txn(d: &mut TopologyTestDriver, id: &str, card: &str, amount: &str, at: i64, (lat, lon): (f64, f64)) -> Vec<Rule> {
    let v = json!({"txn_id": id, "card_id": card, "amount": amount, "currency": "USD", "merchant": "M", "country": "US",
        "lat": lat, "lon": lon, "ts": ts(at)});
    assert_eq!(d.pipe(TRANSACTIONS_TOPIC, Some(card), v.to_string().as_bytes()).expect("pipe"), Outcome::Processed);
    let alerts: Vec<Alert> = d.read_json(ALERTS_TOPIC).expect("alerts");
    alerts.into_iter().find(|a| a.txn_id == id).map(|a| a.rules).unwrap_or_default()
}

const NYC: (f64, f64) = (40.7128, -74.0060);
const NEWARK: (f64, f64) = (40.7357, -74.1724); // 14 km from NYC
const LONDON: (f64, f64) = (51.5074, -0.1278); // 5,570 km from NYC

#[test]
fn velocity_fires_on_the_sixth_transaction_within_ten_minutes_not_the_fifth() {
    let mut d = driver();
    profile(&mut d, "c1", "100000", T0);
    for i in 0..5 {
        assert!(!txn(&mut d, &format!("v{i}"), "c1", "10", T0 + i * MIN, NYC).contains(&Rule::Velocity), "{i}");
    }
    // The sixth at 09:59.999 after the first: six within 10 minutes.
    assert_eq!(txn(&mut d, "v5", "c1", "10", T0 + 10 * MIN - 1, NYC), vec![Rule::Velocity]);
    // On another card: the sixth exactly 10 minutes after the first is outside its window.
    profile(&mut d, "c2", "100000", T0);
    for i in 0..5 {
        txn(&mut d, &format!("w{i}"), "c2", "10", T0 + i * 2 * MIN, NYC);
    }
    assert!(txn(&mut d, "w5", "c2", "10", T0 + 10 * MIN, NYC).is_empty());
}

#[test]
fn amount_anomaly_needs_history_and_an_amount_far_above_it() {
    let mut d = driver();
    profile(&mut d, "c1", "100000", T0);
    // Nine amounts of 100: not enough history to judge a 10,000.
    for i in 0..9 {
        txn(&mut d, &format!("h{i}"), "c1", "100", T0 + i * 60 * MIN, NYC);
    }
    assert!(txn(&mut d, "big-early", "c1", "10000", T0 + 9 * 60 * MIN, NYC).is_empty(), "fewer than 10 amounts known");
    // Now 10 amounts known (the 10,000 counted: it was not judged anomalous), mean 1,090: 3x the mean is 3,270.
    assert!(txn(&mut d, "just-below", "c1", "3270", T0 + 10 * 60 * MIN, NYC).is_empty(), "not above 3x the mean");
    let mut d = driver();
    profile(&mut d, "c2", "100000", T0);
    for i in 0..10 {
        txn(&mut d, &format!("g{i}"), "c2", if i % 2 == 0 { "90" } else { "110" }, T0 + i * 60 * MIN, NYC);
    }
    // mean 100, sd ~10.5: 4 sd above is ~142, 3x the mean is 300.
    assert_eq!(txn(&mut d, "above", "c2", "300.01", T0 + 11 * 60 * MIN, NYC), vec![Rule::AmountAnomaly]);
    // The anomaly did not enter the history: the next one is judged against the same mean.
    assert_eq!(txn(&mut d, "again", "c2", "300.01", T0 + 12 * 60 * MIN, NYC), vec![Rule::AmountAnomaly]);
    assert!(txn(&mut d, "three-x", "c2", "300", T0 + 13 * 60 * MIN, NYC).is_empty(), "exactly 3x the mean is not above it");
}

#[test]
fn impossible_travel_compares_with_the_neighbours_in_event_time() {
    let mut d = driver();
    profile(&mut d, "c1", "100000", T0);
    txn(&mut d, "home", "c1", "10", T0, NYC);
    // 14 km in 1 minute is 840 km/h: possible. London 5,570 km away 6 hours later is 928 km/h: not.
    assert!(txn(&mut d, "newark", "c1", "10", T0 + MIN, NEWARK).is_empty());
    assert_eq!(txn(&mut d, "london", "c1", "10", T0 + MIN + 6 * 60 * MIN, LONDON), vec![Rule::ImpossibleTravel]);
    // The flagged one is not where the holder was: back in New York an hour later is fine.
    assert!(txn(&mut d, "back", "c1", "10", T0 + 8 * 60 * MIN, NYC).is_empty());
    // London 7 hours after New York is 796 km/h: possible.
    assert!(txn(&mut d, "flight", "c1", "10", T0 + 15 * 60 * MIN, LONDON).is_empty());
    // Out of order: a New York transaction stamped 30 minutes before that London one, arriving after it. It agrees
    // with New York at 08:00, so London at 15:00 is the impossible one: it gets a revised alert.
    let v = json!({"txn_id": "late-nyc", "card_id": "c1", "amount": "10", "currency": "USD", "merchant": "M", "country": "US",
        "lat": NYC.0, "lon": NYC.1, "ts": ts(T0 + 15 * 60 * MIN - 30 * MIN)});
    d.pipe(TRANSACTIONS_TOPIC, Some("c1"), v.to_string().as_bytes()).expect("pipe");
    let alerts: Vec<Alert> = d.read_json(ALERTS_TOPIC).expect("alerts");
    assert_eq!(
        alerts.iter().map(|a| (a.txn_id.as_str(), a.rules.clone())).collect::<Vec<_>>(),
        vec![("flight", vec![Rule::ImpossibleTravel])]
    );
}

#[test]
fn daily_limit_counts_the_cards_calendar_day_and_profile_changes_apply_to_later_transactions() {
    let mut d = driver();
    let midnight = T0 - T0.rem_euclid(86_400_000);
    profile(&mut d, "c1", "1000.00", T0);
    assert!(txn(&mut d, "a", "c1", "600", midnight + 60 * MIN, NYC).is_empty());
    assert!(txn(&mut d, "b", "c1", "400", midnight + 120 * MIN, NYC).is_empty(), "1,000 spent: at the limit, not over it");
    assert_eq!(txn(&mut d, "c", "c1", "0.01", midnight + 180 * MIN, NYC), vec![Rule::DailyLimit]);
    // A new day starts from zero.
    assert!(txn(&mut d, "d", "c1", "900", midnight + 86_400_000, NYC).is_empty());
    // The limit is lowered mid-day: the next transaction is judged by the new profile.
    profile(&mut d, "c1", "500.00", T0 + 1);
    assert_eq!(txn(&mut d, "e", "c1", "1", midnight + 86_400_000 + 60 * MIN, NYC), vec![Rule::DailyLimit]);
    // EUR is converted before it is counted: 100 EUR is 110 USD.
    let mut d = driver();
    profile(&mut d, "c2", "109.99", T0);
    let v = json!({"txn_id": "eur", "card_id": "c2", "amount": "100", "currency": "EUR", "merchant": "M", "country": "FR",
        "lat": 48.85, "lon": 2.35, "ts": ts(T0)});
    d.pipe(TRANSACTIONS_TOPIC, Some("c2"), v.to_string().as_bytes()).expect("pipe");
    let alerts: Vec<Alert> = d.read_json(ALERTS_TOPIC).expect("alerts");
    assert_eq!(alerts.iter().map(|a| a.rules.clone()).collect::<Vec<_>>(), vec![vec![Rule::DailyLimit]]);
}

#[test]
fn a_closed_card_is_flagged_from_its_closure_on_and_a_card_without_profile_is_still_checked() {
    let mut d = driver();
    profile(&mut d, "c1", "1000", T0);
    close(&mut d, "c1", T0 + 60 * MIN);
    // Stamped before the closure (processed after it): not on a closed card, and judged by the old profile.
    assert_eq!(txn(&mut d, "before", "c1", "1500", T0 + 30 * MIN, NYC), vec![Rule::DailyLimit]);
    assert_eq!(txn(&mut d, "after", "c1", "10", T0 + 60 * MIN, NYC), vec![Rule::ClosedCard]);
    // A new profile reopens the card.
    profile(&mut d, "c1", "100000", T0 + 90 * MIN);
    assert!(txn(&mut d, "reopened", "c1", "10", T0 + 120 * MIN, NYC).is_empty());

    // No profile at all: the rules that need none still run; the alert has no customer.
    for i in 0..6 {
        txn(&mut d, &format!("anon{i}"), "nobody", "10", T0 + i * MIN, NYC);
    }
    let v = json!({"txn_id": "anon6", "card_id": "nobody", "amount": "10", "currency": "USD", "merchant": "M", "country": "US",
        "lat": NYC.0, "lon": NYC.1, "ts": ts(T0 + 6 * MIN)});
    d.pipe(TRANSACTIONS_TOPIC, Some("nobody"), v.to_string().as_bytes()).expect("pipe");
    let alerts: Vec<Alert> = d.read_json(ALERTS_TOPIC).expect("alerts");
    assert_eq!(alerts.last().map(|a| (a.rules.clone(), a.customer_id.clone())), Some((vec![Rule::Velocity], None)));
}

#[test]
fn alerts_carry_the_contracts_fields_and_a_combined_score() {
    let mut d = driver();
    profile(&mut d, "c1", "100", T0);
    close(&mut d, "c1", T0);
    txn(&mut d, "x", "c1", "150", T0 + MIN, NYC);
    let v = json!({"txn_id": "y", "card_id": "c1", "amount": "1", "currency": "USD", "merchant": "M", "country": "GB",
        "lat": LONDON.0, "lon": LONDON.1, "ts": ts(T0 + 2 * MIN)});
    // Keyed by something else: repartitioned to the card.
    d.pipe(TRANSACTIONS_TOPIC, Some("cust-c1"), v.to_string().as_bytes()).expect("pipe");
    let out = d.read_output(ALERTS_TOPIC);
    let last = out.last().expect("an alert");
    assert_eq!(last.key.as_deref(), Some(&b"c1"[..]));
    let a: serde_json::Value = serde_json::from_slice(last.value.as_deref().expect("value")).expect("json");
    assert_eq!(a["alert_id"], "fa-y");
    // After the closure the profile is gone (the old one serves only transactions from before it): no daily limit
    // to check, no customer to name.
    assert_eq!(a["customer_id"], serde_json::Value::Null);
    assert_eq!(a["rules"], json!(["impossible_travel", "closed_card"]));
    // 1 - (1-0.8)(1-0.9) = 0.98
    assert_eq!(a["score"], json!(0.98));
    for field in ["txn_id", "card_id", "ts", "detected_at"] {
        assert!(a.get(field).is_some(), "{field}");
    }
}

#[test]
fn malformed_transactions_and_unkeyed_profiles_are_dead_lettered() {
    let mut d = driver();
    let bad: [&[u8]; 5] = [
        b"{\"txn_id\": ",
        br#"{"txn_id": "t", "card_id": "c", "amount": "-1", "currency": "USD", "merchant": "M", "country": "US", "lat": 1.0, "lon": 1.0, "ts": "2026-11-24T10:00:00Z"}"#,
        br#"{"txn_id": "t", "card_id": "c", "amount": "1", "currency": "XXX", "merchant": "M", "country": "US", "lat": 1.0, "lon": 1.0, "ts": "2026-11-24T10:00:00Z"}"#,
        br#"{"txn_id": "t", "card_id": "c", "amount": "1", "currency": "USD", "merchant": "M", "country": "US", "lat": 91.0, "lon": 1.0, "ts": "2026-11-24T10:00:00Z"}"#,
        br#"{"txn_id": "t", "card_id": "c", "amount": "1", "currency": "USD", "merchant": "M", "country": "US", "lat": 1.0, "lon": 1.0}"#,
    ];
    for b in bad {
        assert!(
            matches!(d.pipe(TRANSACTIONS_TOPIC, Some("c"), b).expect("pipe"), Outcome::DeadLettered(_)),
            "{}",
            String::from_utf8_lossy(b)
        );
    }
    let unkeyed = d.pipe_with(PROFILES_TOPIC, 0, None, Some(br#"{"card_id": "c"}"#), RecordTimestamp::CreateTime(T0)).expect("pipe");
    assert!(matches!(unkeyed, Outcome::DeadLettered(_)));
    assert_eq!(d.read_output(&d.dead_letter_topic()).len(), 6);
}

#[test]
fn an_out_of_order_arrival_revises_the_later_transactions_it_precedes() {
    let mut d = driver();
    let midnight = T0 - T0.rem_euclid(86_400_000);
    profile(&mut d, "c1", "105.00", T0);
    for i in 0..4 {
        txn(&mut d, &format!("v{i}"), "c1", "1", midnight + 60 * MIN + i * MIN, NYC);
    }
    // The sixth by event time arrives before the fifth: only five known in its window, so nothing yet.
    assert!(txn(&mut d, "v5", "c1", "1", midnight + 60 * MIN + 5 * MIN, NYC).is_empty());
    // The fifth arrives: nothing on it, but the sixth is judged again and gets a revised alert.
    let v = json!({"txn_id": "v4", "card_id": "c1", "amount": "1", "currency": "USD", "merchant": "M", "country": "US",
        "lat": NYC.0, "lon": NYC.1, "ts": ts(midnight + 60 * MIN + 4 * MIN)});
    d.pipe(TRANSACTIONS_TOPIC, Some("c1"), v.to_string().as_bytes()).expect("pipe");
    let alerts: Vec<Alert> = d.read_json(ALERTS_TOPIC).expect("alerts");
    assert_eq!(alerts.iter().map(|a| (a.alert_id.as_str(), a.rules.clone())).collect::<Vec<_>>(), vec![("fa-v5", vec![Rule::Velocity])]);

    // Daily spend by event time: a late, earlier purchase pushes a later one over the limit.
    assert!(txn(&mut d, "day-late", "c1", "95", midnight + 20 * 60 * MIN, NYC).is_empty(), "6 + 95 = 101: under 105");
    let v = json!({"txn_id": "day-early", "card_id": "c1", "amount": "5", "currency": "USD", "merchant": "M", "country": "US",
        "lat": NYC.0, "lon": NYC.1, "ts": ts(midnight + 19 * 60 * MIN)});
    d.pipe(TRANSACTIONS_TOPIC, Some("c1"), v.to_string().as_bytes()).expect("pipe");
    let alerts: Vec<Alert> = d.read_json(ALERTS_TOPIC).expect("alerts");
    let revised: Vec<_> = alerts.iter().map(|a| (a.txn_id.as_str(), a.rules.clone())).collect();
    assert_eq!(
        revised,
        vec![("day-late", vec![Rule::DailyLimit])],
        "6 + 5 + 95 = 106 > 105 once the earlier 5 is known; the 5 itself (11) is under"
    );
}

#[test]
fn a_place_that_arrives_late_shows_which_neighbour_was_the_impossible_one() {
    let mut d = driver();
    profile(&mut d, "c1", "100000", T0);
    txn(&mut d, "home-0", "c1", "1", T0, NYC);
    // London 10 hours later: possible on its own (557 km/h), so not flagged on arrival.
    assert!(txn(&mut d, "london", "c1", "1", T0 + 600 * MIN, LONDON).is_empty());
    // New York 30 minutes before London arrives late: consistent with the earlier New York one, impossible with
    // London. New York is where the holder was; London gets a revised alert.
    let v = json!({"txn_id": "home-1", "card_id": "c1", "amount": "1", "currency": "USD", "merchant": "M", "country": "US",
        "lat": NEWARK.0, "lon": NEWARK.1, "ts": ts(T0 + 570 * MIN)});
    d.pipe(TRANSACTIONS_TOPIC, Some("c1"), v.to_string().as_bytes()).expect("pipe");
    let alerts: Vec<Alert> = d.read_json(ALERTS_TOPIC).expect("alerts");
    assert_eq!(
        alerts.iter().map(|a| (a.txn_id.as_str(), a.rules.clone())).collect::<Vec<_>>(),
        vec![("london", vec![Rule::ImpossibleTravel])]
    );
}

#[test]
fn a_merchant_on_the_global_blocklist_is_flagged_on_every_card() {
    let mut d = driver();
    let reason = json!({"reason": "chargebacks"}).to_string();
    d.pipe_with("merchant-blocklist", 0, Some("Shady Electronics"), Some(reason.as_bytes()), RecordTimestamp::CreateTime(T0))
        .expect("blocklist");
    for (i, card) in ["c1", "c2", "c3"].iter().enumerate() {
        let v = json!({"txn_id": format!("s{i}"), "card_id": card, "amount": "10", "currency": "USD", "merchant": "Shady Electronics",
            "country": "US", "lat": NYC.0, "lon": NYC.1, "ts": ts(T0)});
        d.pipe(TRANSACTIONS_TOPIC, Some(card), v.to_string().as_bytes()).expect("pipe");
    }
    let alerts: Vec<Alert> = d.read_json(ALERTS_TOPIC).expect("alerts");
    assert_eq!(alerts.iter().map(|a| a.rules.clone()).collect::<Vec<_>>(), vec![vec![Rule::BlockedMerchant]; 3]);
    assert!(txn(&mut d, "ok", "c1", "10", T0 + 60 * MIN, NYC).is_empty(), "other merchants are not");
}

#[test]
fn an_amount_the_running_statistics_cannot_hold_is_dead_lettered_and_the_card_goes_on() {
    let mut d = driver();
    profile(&mut d, "c9", "1000000000000000000000", T0);
    assert!(txn(&mut d, "small", "c9", "1", T0, NYC).is_empty());
    // (1e15 - 1) * (1e15 - mean): the variance term is beyond any decimal.
    let v = json!({"txn_id": "huge", "card_id": "c9", "amount": "1000000000000000", "currency": "USD", "merchant": "M",
        "country": "US", "lat": NYC.0, "lon": NYC.1, "ts": ts(T0 + MIN)});
    d.pipe(TRANSACTIONS_TOPIC, Some("c9"), v.to_string().as_bytes()).expect("pipe");
    // Refused after the repartition by card, so its dead letter is the repartitioned copy, with the reason.
    let dlq = d.read_output("fraud-detection.dlq");
    let reasons: Vec<String> = dlq
        .iter()
        .flat_map(|r| r.headers.iter().filter(|(k, _)| k == "error"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(matches!(reasons.as_slice(), [r] if r.contains("too far from the mean")), "{reasons:?}");
    assert!(txn(&mut d, "next", "c9", "2", T0 + 2 * MIN, NYC).is_empty(), "the card's next transaction is judged as before");
}

#[test]
fn a_profile_on_a_partition_murmur2_does_not_give_its_key_is_dead_lettered_not_silently_missed() {
    let mut d = TopologyTestDriver::new(build_topology(&settings()).expect("topology")).with_partitions(4);
    let right = streamcore::partition::partition_for(b"c7", 4);
    let wrong = (right + 1) % 4;
    let v = json!({"card_id": "c7", "customer_id": "cust-c7", "home_country": "US", "daily_limit": "100"}).to_string();
    // librdkafka's default partitioner (consistent_random) may put the key anywhere else.
    let outcome = d.pipe_with(PROFILES_TOPIC, wrong, Some("c7"), Some(v.as_bytes()), RecordTimestamp::CreateTime(T0)).expect("pipe");
    assert!(matches!(&outcome, Outcome::DeadLettered(r) if r.contains(&format!("belongs on partition {right}"))), "{outcome:?}");
    let tombstone = d.pipe_with(PROFILES_TOPIC, wrong, Some("c7"), None, RecordTimestamp::CreateTime(T0 + 1)).expect("pipe");
    assert!(matches!(tombstone, Outcome::DeadLettered(_)), "a closure there would be missed too: {tombstone:?}");
    let placed = d.pipe_with(PROFILES_TOPIC, right, Some("c7"), Some(v.as_bytes()), RecordTimestamp::CreateTime(T0)).expect("pipe");
    assert_eq!(placed, Outcome::Processed);
    assert_eq!(d.read_output("fraud-detection.dlq").len(), 2);
}
