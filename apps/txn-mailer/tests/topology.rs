//! The mailer's topology in the in-memory test driver: thresholds, currencies, dedupe, dead letters. Emails go
//! through lettre's file transport into a temporary outbox, so each test reads the messages actually built.

use serde_json::json;
use std::sync::Arc;
use streamcore::task::Outcome;
use streamcore::testkit::TopologyTestDriver;
use txn_mailer::mailer::Mailer;
use txn_mailer::model::{Alert, Stats};
use txn_mailer::topology::{build_topology, Settings, STATS_STORE};

struct Fixture {
    driver: TopologyTestDriver,
    outbox: tempfile::TempDir,
}

/// The contract's topics and a 10,000.00 USD threshold, with the given rates and default rep.
fn settings(fx: &str, default_rep: Option<&str>) -> Settings {
    Settings {
        application_id: "txn-mailer".into(),
        input_topic: "transactions".into(),
        alerts_topic: "high-value-alerts".into(),
        threshold: "10000.00 USD".parse().expect("threshold"),
        fx: fx.parse().expect("fx"),
        default_rep: default_rep.map(str::to_owned),
    }
}

fn fixture() -> Fixture {
    let outbox = tempfile::tempdir().expect("tempdir");
    let settings = settings("EUR=1.08,JPY=0.0067", Some("desk@example.com"));
    let mailer = Mailer::outbox(outbox.path(), "txn-mailer@example.com").expect("mailer");
    let driver = TopologyTestDriver::new(build_topology(&settings, Arc::new(mailer)).expect("topology"));
    Fixture { driver, outbox }
}

fn txn(id: &str, amount: serde_json::Value, currency: &str) -> serde_json::Value {
    json!({"txn_id": id, "account_id": "acc-42", "amount": amount, "currency": currency, "merchant": "Acme Travel",
           "sales_rep": "kim@example.com", "ts": "2026-11-24T14:30:00.250Z"})
}

impl Fixture {
    fn pipe(&mut self, v: &serde_json::Value) -> Outcome {
        self.driver.pipe_json("transactions", Some("acc-42"), v).expect("pipe")
    }
    fn alerts(&mut self) -> Vec<Alert> {
        self.driver.read_json("high-value-alerts").expect("alerts decode")
    }
    fn emails(&self) -> Vec<String> {
        let mut mails: Vec<String> = std::fs::read_dir(self.outbox.path())
            .expect("outbox")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| std::fs::read_to_string(e.path()).expect("read mail"))
            .collect();
        mails.sort();
        mails
    }
}

#[test]
fn threshold_is_inclusive_and_converted_exactly() {
    let mut f = fixture();
    assert_eq!(f.pipe(&txn("below", json!("9999.99"), "USD")), Outcome::Processed);
    assert_eq!(f.pipe(&txn("exact", json!("10000.00"), "USD")), Outcome::Processed);
    let number: serde_json::Value = serde_json::from_str("12500.10").expect("JSON number");
    assert_eq!(f.pipe(&txn("number", number, "USD")), Outcome::Processed);
    // 9259.26 EUR * 1.08 = 10000.0008 USD: above. 9259.25 EUR = 9999.9900 USD: below.
    assert_eq!(f.pipe(&txn("eur-above", json!("9259.26"), "EUR")), Outcome::Processed);
    assert_eq!(f.pipe(&txn("eur-below", json!("9259.25"), "EUR")), Outcome::Processed);
    let alerts = f.alerts();
    let ids: Vec<&str> = alerts.iter().map(|a| a.txn_id.as_str()).collect();
    assert_eq!(ids, ["exact", "number", "eur-above"]);
    assert_eq!(alerts[1].amount.to_string(), "12500.10", "a JSON number keeps its exact digits");
    assert_eq!(alerts[2].amount_usd.to_string(), "10000.0008");
    assert_eq!(f.emails().len(), 3);
    let mail = f.emails().into_iter().find(|m| m.contains("eur-above")).expect("mail for eur-above");
    assert!(mail.contains("Subject: High-value transaction eur-above: 9259.26 EUR"), "{mail}");
    assert!(mail.contains("To: kim@example.com"));
    for part in ["Account:     acc-42", "Merchant:    Acme Travel", "Amount USD:  10000.0008", "Event time:  2026-11-24T14:30:00.250+00:00"]
    {
        assert!(mail.contains(part), "missing {part:?} in\n{mail}");
    }
    let stats: Stats = f.driver.store(STATS_STORE, 0).expect("store").get_json("stats").expect("read").expect("stats");
    assert_eq!((stats.seen, stats.alerted, stats.alerted_usd.to_string()), (5, 3, "32500.1008".to_owned()));
}

#[test]
fn same_txn_id_twice_sends_one_email_and_writes_one_audit_record() {
    let mut f = fixture();
    f.pipe(&txn("t-1", json!("20000"), "USD"));
    f.pipe(&txn("t-1", json!("20000"), "USD"));
    assert_eq!(f.alerts().len(), 1, "one audit record per email sent, not per copy of the transaction");
    assert_eq!(f.emails().len(), 1, "and one email");
}

#[test]
fn missing_rep_falls_back_to_the_default() {
    let mut f = fixture();
    let mut t = txn("no-rep", json!("15000"), "USD");
    t.as_object_mut().expect("object").remove("sales_rep");
    f.pipe(&t);
    assert_eq!(f.alerts()[0].sales_rep, "desk@example.com");
}

#[test]
fn bad_input_goes_to_the_dead_letter_topic_and_the_rest_keeps_flowing() {
    let mut f = fixture();
    let mut no_ts = txn("x", json!("1"), "USD");
    no_ts.as_object_mut().expect("object").remove("ts");
    let mut bad_ts = txn("x", json!("1"), "USD");
    bad_ts["ts"] = json!("yesterday");
    let mut bad_rep = txn("bad-rep", json!("50000"), "USD");
    bad_rep["sales_rep"] = json!("not an address");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not JSON"),
        (serde_json::to_vec(&txn("neg", json!("-5.00"), "USD")).expect("json"), "amount must be positive, got -5.00"),
        (serde_json::to_vec(&txn("zero", json!("0"), "USD")).expect("json"), "amount must be positive, got 0"),
        (serde_json::to_vec(&txn("xyz", json!("20000"), "XYZ")).expect("json"), "unknown currency \"XYZ\""),
        (serde_json::to_vec(&no_ts).expect("json"), "missing field `ts`"),
        (serde_json::to_vec(&bad_ts).expect("json"), "invalid event"),
        (serde_json::to_vec(&txn("str-amount", json!("12,5"), "USD")).expect("json"), "invalid event"),
        (serde_json::to_vec(&bad_rep).expect("json"), "invalid address \"not an address\""),
    ];
    for (bytes, _) in &cases {
        let outcome = f.driver.pipe("transactions", Some("acc-42"), bytes).expect("pipe");
        assert!(matches!(outcome, Outcome::DeadLettered(_)), "{outcome:?} for {}", String::from_utf8_lossy(bytes));
    }
    f.pipe(&txn("good", json!("10000"), "USD"));
    let dlq = f.driver.read_output("txn-mailer.dlq");
    assert_eq!(dlq.len(), cases.len());
    for (record, (bytes, reason)) in dlq.iter().zip(&cases) {
        let error =
            record.headers.iter().find(|(k, _)| k == "error").map(|(_, v)| String::from_utf8_lossy(v).into_owned()).expect("error header");
        assert!(error.contains(reason), "expected {reason:?} in {error:?}");
        assert_eq!(record.value.as_ref(), Some(bytes), "original value kept");
        assert_eq!(record.key.as_deref(), Some(&b"acc-42"[..]), "original key kept");
        for h in ["source.topic", "source.partition", "source.offset"] {
            assert!(record.headers.iter().any(|(k, _)| k == h), "header {h}");
        }
    }
    assert_eq!(f.alerts().len(), 1, "the good record after the bad ones was processed");
}

#[test]
fn topology_describes_itself() {
    let f = fixture();
    drop(f.driver);
    let settings = settings("", None);
    let t = build_topology(&settings, Arc::new(Mailer::outbox(f.outbox.path(), "a@b.c").expect("mailer"))).expect("topology");
    let text = t.describe();
    assert!(text.contains("Source: transactions-source (topic: transactions)"), "{text}");
    assert!(text.contains("Processor: notify (process; stores: sent-txns, recent-alerts, mailer-stats)"), "{text}");
    assert!(text.contains("Sink: by-txn-id-repartition-sink (topic: txn-mailer-by-txn-id-repartition)"), "{text}");
    assert_eq!(t.internal_topics(), ["txn-mailer-by-txn-id-repartition"]);
    assert!(text.contains("Sink: alerts-sink (topic: high-value-alerts)"), "{text}");
    assert!(text.contains("changelog: txn-mailer-sent-txns-changelog"), "{text}");
    assert!(t.to_mermaid().starts_with("flowchart LR"));
}

#[test]
fn copies_of_one_transaction_on_different_partitions_meet_after_repartitioning() {
    let outbox = tempfile::tempdir().expect("tempdir");
    let settings = settings("", None);
    let mailer = Mailer::outbox(outbox.path(), "txn-mailer@example.com").expect("mailer");
    let mut d = TopologyTestDriver::new(build_topology(&settings, Arc::new(mailer)).expect("topology")).with_partitions(4);
    let bytes = serde_json::to_vec(&txn("t-everywhere", json!("30000"), "USD")).expect("json");
    // Keyed by account on partition 0, then unkeyed on partition 3, then keyed wrongly on partition 2.
    use streamcore::time::RecordTimestamp::CreateTime;
    d.pipe_with("transactions", 0, Some("acc-42"), Some(&bytes), CreateTime(0)).expect("pipe");
    d.pipe_with("transactions", 3, None, Some(&bytes), CreateTime(0)).expect("pipe");
    d.pipe_with("transactions", 2, Some("t-everywhere"), Some(&bytes), CreateTime(0)).expect("pipe");
    let mails = std::fs::read_dir(outbox.path())
        .expect("outbox")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .count();
    assert_eq!(mails, 1, "one email, wherever the copies arrived");
    let alerts = d.read_output("high-value-alerts");
    assert_eq!(alerts.len(), 1, "one audit record, for the one email");
    assert!(alerts.iter().all(|a| a.key.as_deref() == Some(&b"acc-42"[..])), "audit records keyed by account");
    let p = streamcore::partition::partition_for(b"t-everywhere", 4);
    assert!(
        d.store("sent-txns", p).expect("task").get_json::<Alert>("t-everywhere").expect("read").is_some(),
        "the dedupe entry lives in the txn_id's partition {p}"
    );
}

#[test]
fn money_no_decimal_holds_exactly_is_refused_and_a_conversion_rounds_once_to_four_places() {
    let mut f = fixture();
    // 40 significant digits: rust_decimal's own parser would make this 10000.000000000000000000000000, above the
    // threshold the producer's amount is below.
    let forty_digits = br#"{"txn_id": "t-40", "account_id": "acc-42", "amount": 9999.999999999999999999999999999999999999,
        "currency": "USD", "merchant": "M", "sales_rep": "kim@example.com", "ts": "2026-11-24T14:30:00Z"}"#;
    let outcome = f.driver.pipe("transactions", Some("acc-42"), forty_digits).expect("pipe");
    assert!(matches!(&outcome, Outcome::DeadLettered(reason) if reason.contains("cannot be held exactly")), "{outcome:?}");
    // The exact product is 9999.99999999999999999999999972 USD: rounded half away from zero to 4 places it is
    // 10000.0000, which is what is compared and what the email says.
    assert_eq!(f.pipe(&txn("eur-28", json!("9259.259259259259259259259259"), "EUR")), Outcome::Processed);
    // 1492537.5 JPY * 0.0067 = 10000.00125 USD: the tie rounds away from zero, to 10000.0013.
    assert_eq!(f.pipe(&txn("jpy", json!("1492537.5"), "JPY")), Outcome::Processed);
    let alerts = f.alerts();
    assert_eq!(
        alerts.iter().map(|a| (a.txn_id.as_str(), a.amount_usd.to_string())).collect::<Vec<_>>(),
        [("eur-28", "10000.0000".into()), ("jpy", "10000.0013".into())]
    );
    let mail = f.emails().into_iter().find(|m| m.contains("eur-28")).expect("an email for eur-28");
    assert!(mail.contains("Amount USD:  10000.0000"), "{mail}");
}
