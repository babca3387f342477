//! The real `stock-ticker` binary against the real broker `scripts/test` started, with 4 input partitions over 2
//! stream threads (so tasks and their state move between threads across restarts), under
//! exactly-once (so every output the test reads is committed, and the repartition topic ends in markers): the
//! golden scenario's endpoints equal the expected file, and answer the same after a SIGKILL and restart, and after
//! the state directory is deleted (state restored from the changelogs, then processing continues from it).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use stock_ticker::model::{DailyStats, Top10};
use stock_ticker::topology::{BY_SYMBOL, DAILY_CHANGES_TOPIC, DAILY_STATS_TOPIC, MOVING_STATS_TOPIC, TOP10_TOPIC, TRADES_TOPIC};
use streamcore::testkit::kafka::{bootstrap, create_topic, produce, read_to_end, read_topic, unique, wait_caught_up};
use streamcore::testkit::process::{free_port, ServiceProcess};
use streamcore::topology::repartition_topic;

struct Ticker {
    app: String,
    prefix: String,
    /// `--output-prefix`: empty, or a reprocessing run's.
    output_prefix: String,
    state: std::path::PathBuf,
}

impl Ticker {
    fn start(&self) -> ServiceProcess {
        ServiceProcess::start(env!("CARGO_BIN_EXE_stock-ticker"), &self.args(&self.state))
    }

    /// An instance on `state` that tells the others its address, so queries it cannot answer go to their owner,
    /// and keeps `standby_replicas` replicas of other instances' tasks.
    fn start_advertised(&self, state: &std::path::Path, standby_replicas: usize) -> ServiceProcess {
        let port = free_port();
        let mut args = self.args(state);
        args.extend(["--advertised-url".to_owned(), format!("http://127.0.0.1:{port}")]);
        args.extend(["--standby-replicas".to_owned(), standby_replicas.to_string()]);
        ServiceProcess::start_on(port, env!("CARGO_BIN_EXE_stock-ticker"), &args)
    }

    fn args(&self, state: &std::path::Path) -> Vec<String> {
        [
            "--bootstrap",
            &bootstrap(),
            "--application-id",
            &self.app,
            "--topic-prefix",
            &self.prefix,
            "--output-prefix",
            &self.output_prefix,
            "--state-dir",
            &state.display().to_string(),
            "--commit-interval-ms",
            "200",
            "--close-when-idle",
            "off",
            "--threads",
            "2",
            "--guarantee",
            "exactly-once",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Every sub-topology processed and committed everything produced so far: the application's one consumer
    /// group is at the end of each of their source topics.
    fn wait_caught_up(&self) {
        let bs = bootstrap();
        let sources = [
            format!("{}{TRADES_TOPIC}", self.prefix),
            repartition_topic(&self.app, BY_SYMBOL),
            format!("{}{}{DAILY_CHANGES_TOPIC}", self.prefix, self.output_prefix),
        ];
        for topic in sources {
            assert!(wait_caught_up(&bs, &self.app, &topic, Duration::from_secs(90)), "{} did not catch up on {topic}", self.app);
        }
    }
}

/// Every endpoint answers as the expected file says: each symbol's days, its latest day, each day's top-10, the latest.
fn assert_endpoints(t: &ServiceProcess, expected: &support::Expected) {
    for want in &expected.daily {
        let path = format!("/stocks/{}/days/{}", want.symbol, want.date);
        let (_, got) =
            t.wait_for(&path, |status, v| status == 200 && serde_json::from_value::<DailyStats>(v.clone()).ok().as_ref() == Some(want));
        assert_eq!(serde_json::from_value::<DailyStats>(got).ok().as_ref(), Some(want), "GET {path}");
    }
    let latest: BTreeMap<&str, &DailyStats> = expected.daily.iter().map(|s| (s.symbol.as_str(), s)).collect();
    for (symbol, want) in latest {
        let got: DailyStats = serde_json::from_value(t.json(&format!("/stocks/{symbol}"))).expect("daily stats");
        assert_eq!(&got, want, "GET /stocks/{symbol} is the latest day");
    }
    for want in &expected.top10 {
        let path = format!("/top10/{}", want.date);
        let (_, got) =
            t.wait_for(&path, |status, v| status == 200 && serde_json::from_value::<Top10>(v.clone()).ok().as_ref() == Some(want));
        assert_eq!(serde_json::from_value::<Top10>(got).ok().as_ref(), Some(want), "GET {path}");
    }
    let got: Top10 = serde_json::from_value(t.json("/top10")).expect("top10");
    assert_eq!(Some(&got), expected.top10.last(), "GET /top10 is the latest day");
}

#[test]
fn golden_scenario_over_four_partitions_survives_sigkill_and_a_lost_state_directory() {
    let bs = bootstrap();
    let (batches, expected) = support::golden();
    let state = tempfile::tempdir().expect("state dir");
    let t = Ticker {
        app: unique("ticker"),
        prefix: format!("{}.", unique("st")),
        output_prefix: String::new(),
        state: state.path().to_path_buf(),
    };
    let input = format!("{}{TRADES_TOPIC}", t.prefix);
    create_topic(&bs, &input, 4, false);

    let ticker = t.start();
    for batch in &batches {
        let records: Vec<(Option<String>, Vec<u8>)> = batch.iter().map(|i| (i.key.clone(), i.value.clone())).collect();
        produce(&bs, &input, &records);
        t.wait_caught_up();
    }
    assert_endpoints(&ticker, &expected);

    // Dead letters point at the user's records; the late trade is on <prefix>stock-ticker.late, refused by the daily windows.
    let dlq = read_topic(&bs, &format!("{}stock-ticker.dlq", t.prefix), expected.dead_letters, Duration::from_secs(60));
    assert_eq!(dlq.iter().filter(|r| r.headers.get("source.topic") == Some(&input)).count(), expected.dead_letters);
    let repartition = repartition_topic(&t.app, BY_SYMBOL);
    let late = read_topic(&bs, &format!("{}stock-ticker.late", t.prefix), usize::MAX, Duration::from_secs(5));
    let daily_late: Vec<_> = late
        .iter()
        .filter(|r| {
            r.headers.get("source.topic") == Some(&repartition) && r.headers.get("late.operator").map(String::as_str) == Some("daily")
        })
        .collect();
    assert_eq!(daily_late.len(), expected.late_for_daily);
    assert_eq!(daily_late[0].json()["price"], "999.00");
    let metrics = ticker.get("/metrics").1;
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("streamcore_late_records_total") && l.contains("operator=\"daily\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(counted, Some(expected.late_for_daily as f64), "late trades are counted in a metric");

    // Bad requests get JSON 4xx answers.
    for (path, status) in [
        ("/stocks/a%20b", 400),
        ("/stocks/AAPL/days/2026-13-01", 400),
        ("/stocks/NOPE", 404),
        ("/top10/2020-01-01", 404),
        ("/stocks/AAPL/moving?limit=0", 400),
    ] {
        let (got, body) = ticker.get(path);
        assert_eq!(got, status, "GET {path}: {body}");
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["error"].is_string()), "GET {path}: {body}");
    }
    assert_eq!(ticker.json("/stocks/aapl/moving?limit=2").as_array().map(Vec::len), Some(2));

    // SIGKILL, restart on the same state directory: the same answers.
    ticker.kill();
    let ticker = t.start();
    assert_endpoints(&ticker, &expected);
    assert_eq!(ticker.terminate().code(), Some(0), "SIGTERM exits cleanly");

    // Lose the state directory: restored from the changelogs, the same answers, and processing continues from it.
    std::fs::remove_dir_all(&t.state).expect("wipe state");
    let ticker = t.start();
    assert_endpoints(&ticker, &expected);
    assert!(ticker.metric("streamcore_restored_records_total") > 0.0, "state came back from the changelogs");
    let more = serde_json::json!({"symbol": "AAPL", "price": "130.00", "volume": 1, "ts": "2026-11-02T11:00:00-05:00"});
    produce(&bs, &input, &[(Some("AAPL".into()), more.to_string().into_bytes())]);
    let (_, day) = ticker.wait_for("/stocks/AAPL/days/2026-11-02", |_, v| v["trades"] == 5);
    assert_eq!((day["trades"].as_u64(), day["volume"].as_u64(), day["close"].as_str()), (Some(5), Some(22), Some("130.00")));
    assert_eq!(day["change_pct"], "8.3333");
    let (_, top) = ticker.wait_for("/top10/2026-11-02", |_, v| v["gainers"][0]["change_pct"] == "8.3333");
    assert_eq!(top["gainers"][0]["symbol"], "AAPL");
}

/// The chapter's reprocessing pattern: while the running version keeps its outputs, a second version under a new
/// application id with `--output-prefix v2.` reads the same trades from the start into fresh state. It answers
/// every endpoint as the golden file says, and every topic it writes holds exactly what the running version's
/// holds, while the running version's topics did not get one record more.
///
/// The trades are on one partition here, so the reprocessing run meets them in the order the running version
/// did. Over several partitions, a run reading them all at once interleaves the partitions after the repartition
/// differently from a run that read them as they came, and a trade inside the grace period in one run can be late
/// in the other: reprocessing repeats event time, not the order records from different partitions meet.
#[test]
fn a_reprocessing_run_writes_beside_the_running_version_and_leaves_its_outputs_alone() {
    let bs = bootstrap();
    let (batches, expected) = support::golden();
    let (state_v1, state_v2) = (tempfile::tempdir().expect("state dir"), tempfile::tempdir().expect("state dir"));
    let prefix = format!("{}.", unique("rp"));
    let v1 =
        Ticker { app: unique("ticker-v1"), prefix: prefix.clone(), output_prefix: String::new(), state: state_v1.path().to_path_buf() };
    let input = format!("{prefix}{TRADES_TOPIC}");
    create_topic(&bs, &input, 1, false);
    let running = v1.start();
    for batch in &batches {
        let records: Vec<(Option<String>, Vec<u8>)> = batch.iter().map(|i| (i.key.clone(), i.value.clone())).collect();
        produce(&bs, &input, &records);
        v1.wait_caught_up();
    }
    assert_endpoints(&running, &expected);
    let outputs = [DAILY_STATS_TOPIC, MOVING_STATS_TOPIC, DAILY_CHANGES_TOPIC, TOP10_TOPIC, "stock-ticker.dlq", "stock-ticker.late"];
    let values = |topic: &str| -> Vec<Vec<u8>> {
        let mut v: Vec<_> = read_to_end(&bs, topic, Duration::from_secs(60)).expect(topic).into_iter().filter_map(|r| r.value).collect();
        v.sort();
        v
    };
    let before: Vec<_> = outputs.iter().map(|o| values(&format!("{prefix}{o}"))).collect();

    let v2 = Ticker { app: unique("ticker-v2"), prefix: prefix.clone(), output_prefix: "v2.".into(), state: state_v2.path().to_path_buf() };
    let reprocessing = v2.start();
    v2.wait_caught_up();
    assert_endpoints(&reprocessing, &expected);
    for (output, before) in outputs.iter().zip(&before) {
        assert!(!before.is_empty(), "the running version wrote {prefix}{output}");
        assert_eq!(&values(&format!("{prefix}{output}")), before, "the reprocessing run wrote nothing to {prefix}{output}");
        assert_eq!(&values(&format!("{prefix}v2.{output}")), before, "{prefix}v2.{output} holds what {prefix}{output} holds");
    }
    drop(running);
}

/// The tasks an instance runs, by `/readyz`.
fn active(p: &ServiceProcess) -> Vec<String> {
    let ready: serde_json::Value = serde_json::from_str(&p.get("/readyz").1).unwrap_or_default();
    ready["active"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect()
}

/// The topology's 9 tasks: sub-topologies 0 and 1 over 4 partitions, the ranking's one.
fn all_tasks() -> Vec<String> {
    (0..3).flat_map(|st| (0..if st == 2 { 1 } else { 4 }).map(move |p| format!("{st}_{p}"))).collect()
}

/// The tasks `a` and `b` run together, sorted, once they run all 9 (or after 60 s).
fn split_tasks(a: &ServiceProcess, b: &ServiceProcess) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = active(a);
        all.extend(active(b));
        all.sort();
        if all == all_tasks() || std::time::Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two instances with `standby_replicas` each, done with the golden scenario, its answers checked on both.
struct Pair {
    t: Ticker,
    a: ServiceProcess,
    b: ServiceProcess,
    /// Kept until the pair is dropped, like `state_b`.
    _state_a: tempfile::TempDir,
    state_b: tempfile::TempDir,
    expected: support::Expected,
}

impl Pair {
    fn start(app: &str, standby_replicas: usize) -> Pair {
        let bs = bootstrap();
        let (batches, expected) = support::golden();
        let (state_a, state_b) = (tempfile::tempdir().expect("state dir"), tempfile::tempdir().expect("state dir"));
        let t = Ticker {
            app: unique(app),
            prefix: format!("{}.", unique("sp")),
            output_prefix: String::new(),
            state: state_a.path().to_path_buf(),
        };
        let input = format!("{}{TRADES_TOPIC}", t.prefix);
        create_topic(&bs, &input, 4, false);
        let a = t.start_advertised(state_a.path(), standby_replicas);
        let b = t.start_advertised(state_b.path(), standby_replicas);
        for batch in &batches {
            let records: Vec<(Option<String>, Vec<u8>)> = batch.iter().map(|i| (i.key.clone(), i.value.clone())).collect();
            produce(&bs, &input, &records);
            t.wait_caught_up();
        }
        assert_endpoints(&a, &expected);
        assert_endpoints(&b, &expected);
        assert_eq!(split_tasks(&a, &b), all_tasks(), "the two instances run the topology's 9 tasks between them, each once");
        Pair { t, a, b, _state_a: state_a, state_b, expected }
    }
}

/// Two instances of the one application, each telling the other its address: both answer every endpoint as the
/// golden file says, a symbol's statistics through the instance that owns its task of sub-topology 1, and the
/// top-10 through the one instance that owns task 2_0. Then one is SIGKILLed and comes back with its state
/// directory wiped: its tasks restore from the changelogs and both answer as before.
#[test]
fn two_instances_answer_every_endpoint_through_the_owner_across_a_sigkill_and_a_wiped_state_directory() {
    let pair = Pair::start("ticker-pair", 0);
    pair.b.kill();
    std::fs::remove_dir_all(pair.state_b.path()).expect("wipe state");
    let b = pair.t.start_advertised(pair.state_b.path(), 0);
    assert_endpoints(&b, &pair.expected);
    assert_endpoints(&pair.a, &pair.expected);
}

/// What one query through a failover got.
#[derive(Debug, Default)]
struct Answers {
    fresh: usize,
    stale: usize,
    unavailable: usize,
}

impl Answers {
    /// Count the answer to `path`, which must be `want` (fresh, or marked stale), or 503 with `Retry-After`;
    /// whether it was fresh.
    fn count<T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(&mut self, p: &ServiceProcess, path: &str, want: &T) -> bool {
        let (status, head, body) = p.exchange("GET", path, &[], "");
        match status {
            200 => {
                let got: T = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
                assert_eq!(&got, want, "GET {path} ({head})");
                let stale = head.contains(&format!("\r\n{}: ", streamcore::stale::STALE_HEADER));
                assert!(!stale || path.ends_with("?stale=ok"), "only a caller that allows it gets a stale answer: GET {path}");
                if stale {
                    self.stale += 1;
                } else {
                    self.fresh += 1;
                }
                !stale
            }
            503 => {
                assert!(head.contains("\r\nretry-after: "), "GET {path}: a 503 says when to ask again: {head}");
                self.unavailable += 1;
                false
            }
            other => panic!("GET {path}: {other} {body}, neither the right answer nor a 503 to retry"),
        }
    }
}

#[test]
fn every_key_stays_answered_right_or_marked_stale_through_a_sigkill_and_the_takeover() {
    // Moved out of `pair` one by one, so that its state directories live until the end.
    let pair = Pair::start("ticker-failover", 1);
    let (a, b, expected) = (pair.a, pair.b, &pair.expected);

    // The instance with more stateful tasks (sub-topologies 1 and 2) dies; the other keeps replicas of them all.
    let stateful = |p: &ServiceProcess| active(p).iter().filter(|t| !t.starts_with("0_")).count();
    let (victim, survivor) = if stateful(&a) >= stateful(&b) { (a, b) } else { (b, a) };
    let moving = stateful(&victim);
    assert!(moving > 0, "one of the two holds stateful tasks");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while survivor.metric("streamcore_standby_tasks") < moving as f64 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        survivor.metric("streamcore_standby_tasks"),
        moving as f64,
        "the survivor keeps a replica of each stateful task of the victim"
    );

    let days: Vec<(String, &DailyStats)> = expected.daily.iter().map(|d| (format!("/stocks/{}/days/{}", d.symbol, d.date), d)).collect();
    let tops: Vec<(String, &Top10)> = expected.top10.iter().map(|t| (format!("/top10/{}", t.date), t)).collect();
    victim.kill();
    let (mut strict, mut lenient) = (Answers::default(), Answers::default());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut all_fresh = true;
        for (path, want) in &days {
            lenient.count(&survivor, &format!("{path}?stale=ok"), *want);
            all_fresh &= strict.count(&survivor, path, *want);
        }
        for (path, want) in &tops {
            lenient.count(&survivor, &format!("{path}?stale=ok"), *want);
            all_fresh &= strict.count(&survivor, path, *want);
        }
        if (all_fresh && active(&survivor).len() == all_tasks().len()) || std::time::Instant::now() > deadline {
            break;
        }
        // A caller's pace between rounds, so the queries leave the survivor's two cores to the takeover.
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("answers through the failover: without stale reads {strict:?}, with them {lenient:?}");
    assert_eq!(active(&survivor).len(), all_tasks().len(), "the survivor took every task over");
    assert!(lenient.stale > 0, "while the owner was dead, callers that allow it got the replicas' answers: {lenient:?}");
    assert_eq!(strict.stale, 0, "{strict:?}");
    assert_endpoints(&survivor, expected);
}
