//! `txn-mailer` as a process, against the real Kafka broker and SMTP server `scripts/test` starts.

mod support;

use loadgen::transactions::{generate, Options};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use streamcore::runtime::Guarantee;
use support::*;

const WAIT: Duration = Duration::from_secs(90);

fn setup(name: &str, partitions: i32) -> (String, String, String, tempfile::TempDir) {
    let bs = bootstrap();
    let (input, alerts, app) = (unique(&format!("{name}-txns")), unique(&format!("{name}-alerts")), unique(&format!("{name}-app")));
    create_topic(&bs, &input, partitions, false);
    (input, alerts, app, tempfile::tempdir().expect("state dir"))
}

#[test]
fn emails_audit_records_dead_letters_and_http_are_exactly_as_expected() {
    let bs = bootstrap();
    let (smtp_url, maildir) = smtp();
    let (input, alerts, app, state) = setup("exact", 4);
    let p = unique("x").replace('-', "");
    let id = |s: &str| format!("{p}{s}");
    let mut no_rep: serde_json::Value = serde_json::from_slice(&txn(&id("norep"), "15000", "USD").1).expect("json");
    no_rep.as_object_mut().expect("object").remove("sales_rep");
    let number = format!(
        r#"{{"txn_id":"{}","account_id":"acc-7","amount":12000.50,"currency":"USD","merchant":"M","ts":"2026-11-24T14:30:00Z","sales_rep":"kim@example.com"}}"#,
        id("num")
    );
    // Dated hours ahead, within --max-future (1 day): the broker rejects record timestamps over an hour in the
    // future, so this must not stop the service (outputs are stamped by the producer; event time stays in the
    // payload). Dated years ahead: bad input, dead-lettered.
    let mut future: serde_json::Value = serde_json::from_slice(&txn(&id("future"), "11000", "USD").1).expect("json");
    let soon = (chrono::Utc::now() + chrono::Duration::hours(12)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    future["ts"] = serde_json::json!(soon);
    let mut far: serde_json::Value = serde_json::from_slice(&txn(&id("far"), "11000", "USD").1).expect("json");
    far["ts"] = serde_json::json!("+10000-01-01T00:00:00Z");
    let records = vec![
        (Some("acc-7".into()), future.to_string().into_bytes()),
        (Some("acc-7".into()), far.to_string().into_bytes()),
        txn(&id("below"), "9999.99", "USD"),
        txn(&id("exact"), "10000.00", "USD"),
        txn(&id("above"), "250000.00", "USD"),
        (Some("acc-7".into()), number.into_bytes()),
        txn(&id("eurabove"), "9260.00", "EUR"),
        txn(&id("eurbelow"), "9000.00", "EUR"),
        txn(&id("gbp"), "8000.00", "GBP"),
        (Some("acc-7".into()), no_rep.to_string().into_bytes()),
        txn(&id("above"), "250000.00", "USD"),
        (Some("wrong-key".into()), txn(&id("above"), "250000.00", "USD").1),
        (None, txn(&id("above"), "250000.00", "USD").1),
        (Some("acc-7".into()), b"definitely not json".to_vec()),
        txn(&id("neg"), "-10.00", "USD"),
        txn(&id("xyz"), "50000", "XYZ"),
        (
            None,
            format!(r#"{{"txn_id":"{}","account_id":"a","amount":"1","currency":"USD","merchant":"M","ts":"noon"}}"#, id("badts"))
                .into_bytes(),
        ),
    ];
    produce(&bs, &input, &records);
    let mailer = Mailer::start(&MailerArgs::new(&app, &input, &alerts, &smtp_url, state.path()));
    assert!(mailer.wait_caught_up(&input), "input not fully processed and committed");

    let expected: BTreeSet<String> = ["future", "exact", "above", "num", "eurabove", "gbp", "norep"].iter().map(|s| id(s)).collect();
    let mails = wait_emails(&maildir, &p, expected.len(), WAIT);
    assert_eq!(mails.keys().cloned().collect::<BTreeSet<_>>(), expected, "exactly the expected emails");
    assert!(mails.values().all(|&n| n == 1), "one email each: {mails:?}");

    // Caught up, so everything is on the topic: read it to its end.
    let audit = read_to_end(&bs, &alerts, WAIT).expect("audit topic");
    let mut audited: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for r in &audit {
        let v = r.json();
        assert_eq!(r.key.as_deref(), v["account_id"].as_str(), "audit keyed by account");
        audited.insert(v["txn_id"].as_str().expect("txn_id").to_owned(), v);
    }
    assert_eq!(audit.len(), expected.len(), "one audit record per email, none for the repeated copies of a transaction");
    assert_eq!(audited.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(audited[&id("num")]["amount"], "12000.50", "a JSON number amount keeps its digits");
    assert_eq!(audited[&id("eurabove")]["amount_usd"], "10000.8000");
    assert_eq!(audited[&id("gbp")]["amount_usd"], "10160.0000");
    assert_eq!(audited[&id("norep")]["sales_rep"], "desk@example.com");
    for field in ["txn_id", "account_id", "amount", "currency", "amount_usd", "sales_rep", "ts", "notified_at"] {
        assert!(audited[&id("exact")].get(field).is_some(), "audit field {field}");
    }

    let dlq = read_to_end(&bs, "txn-mailer.dlq", WAIT).expect("dead letters");
    let ours: Vec<_> = dlq.iter().filter(|r| r.headers.get("source.topic") == Some(&input)).collect();
    assert_eq!(ours.len(), 5, "five bad records dead-lettered: {ours:?}");
    assert!(ours.iter().any(|r| r.headers["error"].contains("ahead of the wall clock")), "the far-future record: {ours:?}");
    let reasons: BTreeSet<String> = ours.iter().map(|r| r.headers["error"].split(':').next().unwrap_or_default().to_owned()).collect();
    assert!(
        reasons.contains("not JSON")
            && reasons.contains("unknown currency \"XYZ\"")
            && reasons.contains("amount must be positive, got -10.00"),
        "{reasons:?}"
    );
    assert!(ours.iter().any(|r| r.value.as_deref() == Some(&b"definitely not json"[..]) && r.key.as_deref() == Some("acc-7")));

    // HTTP, from local state.
    let stats = mailer.wait_json("/stats", |s| s["seen"].as_u64() == Some(12));
    assert_eq!((stats["seen"].as_u64(), stats["alerted"].as_u64()), (Some(12), Some(7)), "{stats}");
    let total: Decimal = audited.values().map(|a| a["amount_usd"].as_str().expect("usd").parse::<Decimal>().expect("decimal")).sum();
    assert_eq!(stats["alerted_usd"].as_str().expect("decimal string").parse::<Decimal>().expect("decimal"), total);
    assert_eq!(mailer.json("/alerts/recent?limit=2").as_array().map(Vec::len), Some(2));
    assert_eq!(mailer.json("/alerts/recent").as_array().map(Vec::len), Some(7));
    assert_eq!(audited[&id("future")]["ts"], soon);
    let (status, body) = mailer.get("/alerts/recent?limit=zero");
    assert_eq!(status, 400, "{body}");
    assert!(serde_json::from_str::<serde_json::Value>(&body).expect("JSON error")["error"].is_string());
    assert_eq!(mailer.get("/nope").0, 404);
    assert!(mailer.get("/topology?format=mermaid").1.starts_with("flowchart LR"));
    assert!(mailer.metric("streamcore_dead_lettered_total") >= 4.0);
    assert!(mailer.terminate().success(), "SIGTERM is a clean shutdown");
}

/// The expected high-value transactions of a generated stream, computed independently of the service.
fn oracle(opts: &Options) -> BTreeSet<String> {
    let rates: BTreeMap<&str, Decimal> =
        [("USD", "1"), ("EUR", "1.08"), ("GBP", "1.27")].iter().map(|(c, r)| (*c, r.parse().expect("rate"))).collect();
    generate(opts)
        .filter_map(|g| {
            let v: serde_json::Value = serde_json::from_slice(&g.value).ok()?;
            let amount: Decimal = v["amount"].as_str()?.parse().ok()?;
            let usd = amount * rates.get(v["currency"].as_str()?)?;
            (usd >= Decimal::from(10_000)).then(|| v["txn_id"].as_str().map(str::to_owned)).flatten()
        })
        .collect()
}

#[test]
fn sigkill_mid_stream_loses_no_email() {
    sigkill_mid_stream(Guarantee::AtLeastOnce);
}

/// Under exactly-once the "sent" record commits with the input offset right after the email (the processor's
/// flush asks for a commit): the same one-email window, and the audit topic, read committed, has each alert once.
#[test]
fn sigkill_mid_stream_under_exactly_once_audits_each_alert_once() {
    sigkill_mid_stream(Guarantee::ExactlyOnce);
}

/// Kills the mailer a third of the way through and restarts it; checks the emails and the committed audit records.
fn sigkill_mid_stream(guarantee: Guarantee) {
    let bs = bootstrap();
    let (smtp_url, maildir) = smtp();
    let (input, alerts, app, state) = setup("kill", 4);
    let Workload { records, expected, needle } = workload(600);
    produce(&bs, &input, &records);
    let args = MailerArgs { guarantee, ..MailerArgs::new(&app, &input, &alerts, &smtp_url, state.path()) };

    let mailer = Mailer::start(&args);
    // Kill on an event that is not tied to one email's timing: the audit topic reaching a third of the alerts.
    let seen = read_topic(&bs, &alerts, expected.len() / 3, WAIT);
    assert!(seen.len() >= expected.len() / 3, "the mailer was making progress before the kill");
    mailer.kill();
    let sent_before = emails(&maildir, &needle).values().sum::<usize>();
    assert!(sent_before < expected.len(), "killed mid-stream ({sent_before} of {} sent)", expected.len());

    let mailer = Mailer::start(&args);
    assert!(mailer.wait_caught_up(&input), "restarted mailer did not finish");
    eprintln!("sigkill: {sent_before} sent before the kill");
    assert_each_emailed(&maildir, &needle, &expected);
    drop(mailer);
    audited_once_each(&bs, &alerts, &expected, guarantee);
}

/// Every expected alert emailed; at most one twice, the one a kill can catch between SMTP's acceptance and its
/// "sent" record's acknowledgement; nothing unexpected.
fn assert_each_emailed(maildir: &std::path::Path, needle: &str, expected: &BTreeSet<String>) {
    let mails = wait_emails(maildir, needle, expected.len(), WAIT);
    let missing: Vec<_> = expected.iter().filter(|t| !mails.contains_key(*t)).collect();
    let duplicated: Vec<_> = mails.iter().filter(|(_, &n)| n > 1).collect();
    eprintln!("{} expected, missing {missing:?}, duplicated {duplicated:?}", expected.len());
    assert!(missing.is_empty(), "emails lost: {missing:?}");
    assert_eq!(&mails.keys().cloned().collect::<BTreeSet<_>>(), expected, "no unexpected emails");
    assert!(duplicated.len() <= 1 && duplicated.iter().all(|(_, &n)| n == 2), "duplicates beyond the documented window: {duplicated:?}");
}

/// The committed audit records name every expected alert; under exactly-once, each once.
fn audited_once_each(bootstrap: &str, alerts: &str, expected: &BTreeSet<String>, guarantee: Guarantee) {
    let audited = read_to_end(bootstrap, alerts, WAIT).expect("audit topic");
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for a in &audited {
        *ids.entry(a.json()["txn_id"].as_str().expect("txn_id").to_owned()).or_default() += 1;
    }
    assert_eq!(&ids.keys().cloned().collect::<BTreeSet<_>>(), expected);
    if guarantee == Guarantee::ExactlyOnce {
        let repeated: Vec<_> = ids.iter().filter(|(_, &n)| n > 1).collect();
        assert!(repeated.is_empty(), "audited twice under exactly-once: {repeated:?}");
    }
}

/// A workload of its own per run (the seed printed, to replay a failure), so reruns against one Maildir never mix.
struct Workload {
    records: Vec<(Option<String>, Vec<u8>)>,
    /// The txn ids that must be emailed.
    expected: BTreeSet<String>,
    /// What finds this run's emails among the subjects.
    needle: String,
}

fn workload(count: u64) -> Workload {
    let seed = 0x5_0000_0000 + u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").subsec_nanos());
    eprintln!("seed {seed:#x}");
    let opts = Options { seed, count, high_value_share: 0.3, ..Options::default() };
    Workload { records: generate(&opts).map(|g| (g.key, g.value)).collect(), expected: oracle(&opts), needle: format!("-{seed:x}") }
}

/// Two mailers share the transactions; the first is SIGKILLed while the group rebalances for the second (it has
/// handed over the tasks that move, and still runs the others). The second takes everything over: no email is
/// lost, at most the one in flight at the kill goes twice, and none twice because a task moved.
#[test]
fn two_mailers_one_killed_during_a_rebalance_lose_no_email() {
    for guarantee in [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
        let bs = bootstrap();
        let (smtp_url, maildir) = smtp();
        let (input, alerts, app, first) = setup("rebalance", 4);
        let second = tempfile::tempdir().expect("state dir");
        let Workload { records, expected, needle } = workload(600);
        produce(&bs, &input, &records);
        let a = Mailer::start(&MailerArgs { guarantee, ..MailerArgs::new(&app, &input, &alerts, &smtp_url, first.path()) });
        assert!(read_topic(&bs, &alerts, expected.len() / 3, WAIT).len() >= expected.len() / 3, "{guarantee}: progress");
        let b = Mailer::start(&MailerArgs { guarantee, ..MailerArgs::new(&app, &input, &alerts, &smtp_url, second.path()) });
        // The cooperative rebalance's first step: A has given up the tasks that move to B.
        a.wait_metric("streamcore_revoked_tasks_total", 1.0);
        a.kill();
        assert!(b.wait_caught_up(&input), "{guarantee}: the survivor did not finish");
        assert_each_emailed(&maildir, &needle, &expected);
        drop(b);
        audited_once_each(&bs, &alerts, &expected, guarantee);
    }
}

/// The broker dies while the mailer is emailing, each email followed by a flush of its "sent" record, and comes
/// back on its data. The flush waits it out or the thread starts over with new clients (a sink failure during a
/// flush is the Kafka error it is, not a processing bug that stops the instance): the process never exits, no
/// email is lost and at most the one caught mid-flush goes twice.
#[test]
fn a_broker_outage_while_the_mailer_flushes_loses_no_email_and_stops_nothing() {
    let dir = tempfile::tempdir().expect("broker dir");
    let broker = KafkaBroker::start(&dir.path().join("kafka"));
    let bs = broker.bootstrap.clone();
    let (smtp_url, maildir) = smtp();
    let (input, alerts, app) = (unique("outage-txns"), unique("outage-alerts"), unique("outage-app"));
    create_topic(&bs, &input, 2, false);
    let state = tempfile::tempdir().expect("state dir");
    let Workload { records, expected, needle } = workload(300);
    produce(&bs, &input, &records);
    let mut mailer =
        Mailer::start(&MailerArgs { bootstrap: bs.clone(), ..MailerArgs::new(&app, &input, &alerts, &smtp_url, state.path()) });
    assert!(wait_emails(&maildir, &needle, expected.len() / 3, WAIT).values().sum::<usize>() >= expected.len() / 3, "progress");
    broker.kill_and_restart();
    assert!(mailer.wait_caught_up(&input), "the mailer did not finish after the broker came back");
    assert_each_emailed(&maildir, &needle, &expected);
    assert!(!mailer.exited(), "the mailer stayed up through the outage");
    drop(mailer);
    audited_once_each(&bs, &alerts, &expected, Guarantee::AtLeastOnce);
}

#[test]
fn smtp_outage_delays_emails_and_a_crash_during_it_loses_and_duplicates_none() {
    let bs = bootstrap();
    let (input, alerts, app, state) = setup("outage", 2);
    let smtp_dir = tempfile::tempdir().expect("smtp dir");
    let smtp = SmtpServer::start(smtp_dir.path());
    let p = unique("o").replace('-', "");
    let batch = |from: usize, to: usize| (from..to).map(|i| txn(&format!("{p}n{i}"), "12345.67", "USD")).collect::<Vec<_>>();
    let args = MailerArgs::new(&app, &input, &alerts, &smtp.url, state.path());
    let mailer = Mailer::start(&args);

    produce(&bs, &input, &batch(0, 10));
    assert_eq!(wait_emails(&smtp.maildir(), &p, 10, WAIT).len(), 10);

    // Outage: the alerts wait, retried with backoff, and nothing is committed past them.
    smtp.stop();
    produce(&bs, &input, &batch(10, 20));
    let deadline = std::time::Instant::now() + WAIT;
    while mailer.metric("streamcore_retries_total") < 2.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mailer.metric("streamcore_retries_total") >= 2.0, "the mailer noticed the outage and is retrying");
    assert_eq!(
        mailer.wait_json("/stats", |s| s["alerted"].as_u64() == Some(10))["alerted"].as_u64(),
        Some(10),
        "no alert counted as sent during the outage"
    );
    smtp.restart();
    let mails = wait_emails(&smtp.maildir(), &p, 20, WAIT);
    assert_eq!(mails.len(), 20, "every email arrives once the server is back");

    // Second outage, and the mailer crashes during it: the unsent alerts go out after restart, exactly once.
    smtp.stop();
    produce(&bs, &input, &batch(20, 25));
    let before = mailer.metric("streamcore_retries_total");
    let deadline = std::time::Instant::now() + WAIT;
    while mailer.metric("streamcore_retries_total") <= before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    mailer.kill();
    smtp.restart();
    let mailer = Mailer::start(&args);
    assert!(mailer.wait_caught_up(&input));
    let mails = wait_emails(&smtp.maildir(), &p, 25, WAIT);
    assert_eq!(mails.len(), 25, "all 25 emails: {mails:?}");
    assert!(mails.values().all(|&n| n == 1), "none twice: {mails:?}");
    drop(mailer);
}

#[test]
fn lost_state_directory_comes_back_from_the_changelog() {
    let bs = bootstrap();
    let (smtp_url, maildir) = smtp();
    let (input, alerts, app, state) = setup("wipe", 3);
    let p = unique("w").replace('-', "");
    let first: Vec<_> = (0..10).map(|i| txn(&format!("{p}n{i}"), "20000", "USD")).collect();
    produce(&bs, &input, &first);
    let args = MailerArgs::new(&app, &input, &alerts, &smtp_url, state.path());
    let mailer = Mailer::start(&args);
    assert!(mailer.wait_caught_up(&input));
    assert_eq!(wait_emails(&maildir, &p, 10, WAIT).len(), 10);
    assert!(mailer.terminate().success());

    std::fs::remove_dir_all(state.path()).expect("wipe state");
    // The same ten transactions again (a producer retrying, say), and two new ones.
    let mut again = first.clone();
    again.extend((10..12).map(|i| txn(&format!("{p}n{i}"), "20000", "USD")));
    produce(&bs, &input, &again);
    let mailer = Mailer::start(&args);
    assert!(mailer.wait_caught_up(&input));
    let mails = wait_emails(&maildir, &p, 12, WAIT);
    assert_eq!(mails.len(), 12);
    assert!(mails.values().all(|&n| n == 1), "the restored dedupe store stopped every repeat: {mails:?}");
    let stats = mailer.wait_json("/stats", |s| s["seen"].as_u64() == Some(22));
    assert_eq!((stats["seen"].as_u64(), stats["alerted"].as_u64()), (Some(22), Some(12)), "stats restored and counted on: {stats}");
    assert!(mailer.metric("streamcore_restored_records_total") > 0.0, "state came from the changelog");
}

/// Two mailers with `--advertised-url` share the transactions: each answers `/alerts/recent` and `/stats` for
/// both, every email's alert listed newest first and every email counted, though each holds only its own part.
#[test]
fn either_of_two_mailers_lists_and_counts_the_emails_of_both() {
    let (smtp_url, _maildir) = smtp();
    let (input, alerts, app, first) = setup("lists", 4);
    let second = tempfile::tempdir().expect("state dir");
    let mailers: Vec<Mailer> = [&first, &second]
        .map(|state| Mailer::start(&MailerArgs { advertised: true, ..MailerArgs::new(&app, &input, &alerts, &smtp_url, state.path()) }))
        .into_iter()
        .collect();
    for m in &mailers {
        m.wait_for("/readyz", |status, v| status == 200 && v["tasks"] == 4);
    }
    let Workload { records, expected, .. } = workload(300);
    produce(&bootstrap(), &input, &records);
    assert!(mailers.iter().all(|m| m.wait_caught_up(&input)), "both mailers caught up");

    let part = |m: &Mailer, path: &str| -> serde_json::Value {
        let (_, body) = m.request("GET", path, &[(streamcore::routing::FORWARDED_HEADER, "1")], "");
        serde_json::from_str(&body).unwrap_or_default()
    };
    for m in &mailers {
        let stats = m.wait_json("/stats", |s| s["alerted"].as_u64() == Some(expected.len() as u64));
        assert_eq!(stats["alerted"].as_u64(), Some(expected.len() as u64), "port {}: {stats}", m.port);
        let recent = m.json("/alerts/recent?limit=1000");
        let listed = recent.as_array().cloned().unwrap_or_default();
        let ids: BTreeSet<String> = listed.iter().filter_map(|a| a["txn_id"].as_str().map(str::to_owned)).collect();
        assert_eq!((listed.len(), ids), (expected.len(), expected.clone()), "port {}: every email's alert, once", m.port);
        let sent: Vec<&str> = listed.iter().filter_map(|a| a["notified_at"].as_str()).collect();
        let times: Vec<chrono::DateTime<chrono::Utc>> = sent.iter().filter_map(|t| t.parse().ok()).collect();
        assert!(times.len() == listed.len() && times.windows(2).all(|w| w[0] >= w[1]), "newest first: {sent:?}");
    }
    let parts: Vec<u64> = mailers.iter().map(|m| part(m, "/stats")["alerted"].as_u64().unwrap_or(0)).collect();
    assert_eq!(parts.iter().sum::<u64>(), expected.len() as u64, "each mailer counts only its own tasks' emails: {parts:?}");
    for m in mailers {
        assert!(m.terminate().success());
    }
}
