//! Against the real broker `scripts/test` started: the binary's HTTP endpoints answer from local state, with JSON
//! errors for bad requests. (What the rules catch is measured by `apps/fraud-eval`.)

use serde_json::json;
use streamcore::testkit::kafka::{bootstrap, create_topic, produce, unique};
use streamcore::testkit::process::{free_port, ServiceProcess};

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

/// Two instances share four partitions: each lists every alert, newest first, though each holds only the alerts
/// of its own tasks' cards.
#[test]
fn either_of_two_instances_lists_the_alerts_of_both() {
    let bs = bootstrap();
    let (prefix, app) = (format!("{}.", unique("fraud-pair")), unique("fraud-pair"));
    create_topic(&bs, &format!("{prefix}card-transactions"), 4, false);
    create_topic(&bs, &format!("{prefix}card-profiles"), 4, true);
    let states = [tempfile::tempdir().expect("state"), tempfile::tempdir().expect("state")];
    let instances: Vec<ServiceProcess> = states
        .iter()
        .map(|state| {
            let port = free_port();
            let state = state.path().display().to_string();
            let url = format!("http://127.0.0.1:{port}");
            let args = ["--bootstrap", &bs, "--application-id", &app, "--topic-prefix", &prefix, "--state-dir", &state];
            let args: Vec<String> =
                args.iter().chain(&["--commit-interval-ms", "200", "--advertised-url", &url]).map(|s| s.to_string()).collect();
            ServiceProcess::start_on(port, env!("CARGO_BIN_EXE_fraud-detection"), &args)
        })
        .collect();
    for s in &instances {
        s.wait_for("/readyz", |status, v| status == 200 && v["tasks"] == 4);
    }

    // Eight cards, each over its daily limit on its second transaction: one alert each, an hour apart.
    let cards: Vec<String> = (0..8).map(|i| format!("c-{i}")).collect();
    let profiles: Vec<_> = cards
        .iter()
        .map(|c| {
            let v = json!({"card_id": c, "customer_id": format!("cust-{c}"), "home_country": "US", "daily_limit": "100.00"});
            (Some(c.clone()), v.to_string().into_bytes())
        })
        .collect();
    produce(&bs, &format!("{prefix}card-profiles"), &profiles);
    for s in &instances {
        for c in &cards {
            s.wait_for(&format!("/cards/{c}"), |status, v| status == 200 && v["profile"]["card_id"] == c.as_str());
        }
    }
    let txns: Vec<_> = cards
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            ["a", "b"].map(|n| {
                let v = json!({"txn_id": format!("t-{i}-{n}"), "card_id": c, "amount": "60.00", "currency": "USD", "merchant": "M",
                    "country": "US", "lat": 40.7, "lon": -74.0, "ts": format!("2026-11-24T{:02}:00:00Z", 10 + i)});
                (Some(c.clone()), v.to_string().into_bytes())
            })
        })
        .collect();
    produce(&bs, &format!("{prefix}card-transactions"), &txns);

    let newest_first: Vec<String> = (0..8).rev().map(|i| format!("t-{i}-b")).collect();
    let txn_ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|x| x["txn_id"].as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    for s in &instances {
        let (status, alerts) = s.wait_for("/alerts?limit=100", |status, v| status == 200 && txn_ids(v).len() == cards.len());
        assert_eq!((status, txn_ids(&alerts)), (200, newest_first.clone()), "port {}: {alerts}", s.port);
        let (_, top) = s.wait_for("/alerts?limit=3", |status, _| status == 200);
        assert_eq!(txn_ids(&top), newest_first[..3].to_vec(), "the limit applies to the merged list");
    }
    let part = |s: &ServiceProcess| {
        let (_, body) = s.request("GET", "/alerts?limit=100", &[(streamcore::routing::FORWARDED_HEADER, "1")], "");
        txn_ids(&serde_json::from_str(&body).unwrap_or_default()).len()
    };
    assert_eq!(instances.iter().map(part).sum::<usize>(), cards.len(), "each instance holds only its own part");
    for s in instances {
        assert_eq!(s.terminate().code(), Some(0));
    }
}
