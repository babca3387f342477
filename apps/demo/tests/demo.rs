//! The README's main command, run as users run it (the demo binary on librdkafka's in-process mock cluster, so no
//! broker is involved here): every generated transaction is processed and the outbox holds exactly the emails an
//! independent oracle expects.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn demo_processes_everything_and_mails_exactly_the_high_value_transactions() {
    let outbox = tempfile::tempdir().expect("outbox");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--count", "600", "--rate", "0", "--seed", "9", "--exit-when-done", "--mailer-http", &format!("127.0.0.1:{port}")])
        .arg("--outbox")
        .arg(outbox.path())
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("IN-MEMORY MODE"), "the demo says it runs on the mock cluster:\n{stdout}");

    // The oracle: the same seeded stream the demo generates, judged with the demo's rates.
    let rates: BTreeMap<&str, Decimal> =
        [("USD", "1"), ("EUR", "1.08"), ("GBP", "1.27"), ("JPY", "0.0067")].iter().map(|(c, r)| (*c, r.parse().expect("rate"))).collect();
    let opts = loadgen::transactions::Options { seed: 9, count: 600, malformed_share: 0.01, high_value_share: 0.02, ..Default::default() };
    let expected = loadgen::transactions::generate(&opts)
        .filter(|g| g.malformed.is_none())
        .filter(|g| {
            let v: serde_json::Value = serde_json::from_slice(&g.value).expect("json");
            let amount: Decimal = v["amount"].as_str().expect("amount").parse().expect("decimal");
            amount * rates[v["currency"].as_str().expect("currency")] >= Decimal::from(10_000)
        })
        .count();
    assert!(expected > 0, "the seed yields high-value transactions");
    let mails = std::fs::read_dir(outbox.path())
        .expect("outbox")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .count();
    assert_eq!(mails, expected);
    assert!(stdout.contains(&format!("done: 600 transactions processed, {expected} emails")), "{stdout}");
}
