//! Against the real broker `scripts/test` started: the binary's HTTP endpoints answer from local state, with JSON
//! errors for bad requests. (What the rules catch is measured by `apps/fraud-eval`.)

use serde_json::json;
use streamcore::testkit::kafka::{bootstrap, create_topic, produce, unique};
use streamcore::testkit::process::ServiceProcess;

#[test]
fn the_endpoints_answer_from_local_state() {
    let bs = bootstrap();
    let prefix = format!("{}.", unique("fraud"));
    create_topic(&bs, &format!("{prefix}card-transactions"), 2, false);
    create_topic(&bs, &format!("{prefix}card-profiles"), 2, true);
    let state = tempfile::tempdir().expect("state");
    let args: Vec<String> = [
        "--bootstrap",
        &bs,
        "--application-id",
        &unique("fraud"),
        "--topic-prefix",
        &prefix,
        "--state-dir",
        &state.path().display().to_string(),
        "--commit-interval-ms",
        "200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let service = ServiceProcess::start(env!("CARGO_BIN_EXE_fraud-detection"), &args);
    let profile = json!({"card_id": "c-1", "customer_id": "cust-1", "home_country": "US", "daily_limit": "100.00"});
    produce(&bs, &format!("{prefix}card-profiles"), &[(Some("c-1".into()), profile.to_string().into_bytes())]);
    let (_, card) = service.wait_for("/cards/c-1", |status, _| status == 200);
    assert_eq!(card["profile"]["customer_id"], "cust-1");
    let txn = |id: &str, amount: &str| {
        let v = json!({"txn_id": id, "card_id": "c-1", "amount": amount, "currency": "USD", "merchant": "M", "country": "US",
            "lat": 40.7, "lon": -74.0, "ts": "2026-11-24T10:00:00Z"});
        (Some("c-1".to_owned()), v.to_string().into_bytes())
    };
    produce(&bs, &format!("{prefix}card-transactions"), &[txn("t-1", "60.00"), txn("t-2", "60.00"), (None, b"oops".to_vec())]);
    let (_, alerts) = service.wait_for("/alerts?limit=5", |status, v| status == 200 && v.as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(alerts[0]["txn_id"], "t-2");
    assert_eq!(alerts[0]["rules"], json!(["daily_limit"]));
    assert_eq!(alerts[0]["customer_id"], "cust-1");
    let (_, card) = service.wait_for("/cards/c-1", |_, v| v["stats"]["transactions"] == 2);
    assert_eq!(card["stats"]["transactions"], 2);
    for (path, status) in [("/alerts?limit=0", 400), ("/alerts?limit=x", 400), ("/cards/nope", 404)] {
        let (got, body) = service.get(path);
        assert_eq!(got, status, "GET {path}: {body}");
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["error"].is_string()), "{body}");
    }
    assert!(service.metric("streamcore_dead_lettered_total") >= 1.0);
    assert_eq!(service.terminate().code(), Some(0));
}
