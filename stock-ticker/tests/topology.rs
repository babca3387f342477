//! The stock ticker's three sub-topologies through the test driver: daylight-saving days, day boundaries, grace and late
//! trades, open/close ties, the top-10's replacement and ordering, malformed trades, and the golden scenario.

mod support;

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;
use stock_ticker::model::{DailyStats, MovingStats, Top10, Trade};
use stock_ticker::topology::{topology, Settings, DAILY_CHANGES_TOPIC, DAILY_STATS_TOPIC, MOVING_STATS_TOPIC, TOP10_TOPIC};
use streamcore::task::Outcome;
use streamcore::testkit::TopologyTestDriver;

/// The whole topology in one driver: what sub-topology 1 writes to the daily changes topic is piped on into
/// sub-topology 2, as the broker would deliver it.
struct Ticker {
    driver: TopologyTestDriver,
}

impl Ticker {
    fn new(partitions: i32) -> Self {
        let mut s = Settings::new("stock-ticker");
        s.close_when_idle = None;
        Ticker { driver: TopologyTestDriver::new(topology(&s).expect("topology")).with_partitions(partitions) }
    }

    fn pipe(&mut self, key: Option<&str>, value: &[u8]) -> Outcome {
        self.driver.pipe("trades", key, value).expect("pipe")
    }

    fn trade(&mut self, symbol: &str, price: &str, volume: u64, ts: &str) -> Outcome {
        let t = serde_json::json!({"symbol": symbol, "price": price, "volume": volume, "ts": ts});
        self.pipe(Some(symbol), &serde_json::to_vec(&t).expect("json"))
    }

    fn daily(&mut self) -> Vec<DailyStats> {
        self.driver.read_json(DAILY_STATS_TOPIC).expect("daily stats")
    }

    fn top10(&mut self) -> Vec<Top10> {
        self.driver.read_json(TOP10_TOPIC).expect("top10")
    }

    fn late(&mut self, operator: &str) -> Vec<Trade> {
        let topic = self.driver.late_topic();
        self.driver
            .read_output(&topic)
            .into_iter()
            .filter(|r| r.headers.iter().any(|(k, v)| k == "late.operator" && v == operator.as_bytes()))
            .map(|r| serde_json::from_slice(r.value.as_deref().expect("value")).expect("trade"))
            .collect()
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

fn last(stats: &[DailyStats]) -> &DailyStats {
    stats.last().expect("an update")
}

#[test]
fn the_2026_new_york_daylight_saving_days_have_23_and_25_hours_of_trades() {
    let mut t = Ticker::new(1);
    // 8 March: 00:00 EST is the first instant, 23:59:59.999 EDT the last; 23 hours apart.
    t.trade("SPY", "500", 1, "2026-03-08T00:00:00-05:00");
    t.trade("SPY", "510", 1, "2026-03-08T23:59:59.999-04:00");
    t.trade("SPY", "520", 1, "2026-03-09T00:00:00-04:00");
    let days: Vec<(String, Decimal, Decimal, u64)> =
        t.daily().into_iter().map(|s| (s.date.to_string(), s.open, s.close, s.trades)).collect();
    assert_eq!(
        days,
        vec![
            ("2026-03-08".into(), dec("500"), dec("500"), 1),
            ("2026-03-08".into(), dec("500"), dec("510"), 2),
            ("2026-03-09".into(), dec("520"), dec("520"), 1)
        ]
    );
    // 1 November: 01:30 happens twice (EDT, then EST); both are the 1st, and so is 23:59 EST, 25 hours after midnight.
    t.trade("QQQ", "400", 1, "2026-11-01T00:00:00-04:00");
    t.trade("QQQ", "401", 1, "2026-11-01T01:30:00-04:00");
    t.trade("QQQ", "402", 1, "2026-11-01T01:30:00-05:00");
    t.trade("QQQ", "403", 1, "2026-11-01T23:59:59.999-05:00");
    t.trade("QQQ", "404", 1, "2026-11-02T00:00:00-05:00");
    let nov = t.daily();
    let first = nov.iter().rfind(|s| s.date.to_string() == "2026-11-01").expect("1 November");
    assert_eq!((first.open, first.close, first.trades, first.change_pct), (dec("400"), dec("403"), 4, dec("0.7500")));
    assert_eq!(last(&nov).date.to_string(), "2026-11-02");
}

#[test]
fn out_of_order_trades_count_within_grace_and_late_ones_go_to_the_late_topic() {
    let mut t = Ticker::new(1);
    t.trade("IBM", "200", 1, "2026-11-24T15:00:00-05:00");
    t.trade("IBM", "210", 1, "2026-11-25T03:59:59-05:00"); // the 24th closes at the 25th 04:00 (midnight + 4h)
    t.trade("IBM", "190", 1, "2026-11-24T09:30:00-05:00"); // out of order, within grace: the new open
    let d = t.daily();
    assert_eq!(
        (last(&d).date.to_string(), last(&d).open, last(&d).close, last(&d).low),
        ("2026-11-24".into(), dec("190"), dec("200"), dec("190"))
    );
    assert!(t.late("daily").is_empty());

    t.trade("IBM", "211", 1, "2026-11-25T04:00:00-05:00"); // stream time reaches the 24th's end + grace
    t.daily();
    assert_eq!(t.trade("IBM", "999", 1, "2026-11-24T16:00:00-05:00"), Outcome::Processed);
    assert!(t.daily().is_empty(), "a late trade changes nothing");
    let late = t.late("daily");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].price, dec("999"));
}

#[test]
fn ties_open_with_the_first_arrival_and_close_with_the_last() {
    let mut t = Ticker::new(1);
    t.trade("T", "10", 1, "2026-11-24T10:00:00-05:00");
    t.trade("T", "11", 1, "2026-11-24T10:00:00-05:00");
    t.trade("T", "12", 1, "2026-11-24T10:00:00-05:00");
    let s = t.daily();
    assert_eq!((last(&s).open, last(&s).close, last(&s).high, last(&s).low), (dec("10"), dec("12"), dec("12"), dec("10")));
    assert_eq!(last(&s).change_pct, dec("20.0000"));
}

#[test]
fn moving_windows_report_min_max_and_mean_over_five_minutes() {
    let mut t = Ticker::new(1);
    t.trade("V", "10", 1, "2026-11-24T10:00:30Z");
    t.trade("V", "13", 1, "2026-11-24T10:02:00Z");
    t.trade("V", "11", 1, "2026-11-24T10:04:59.999Z");
    let moving: Vec<MovingStats> = t.driver.read_json(MOVING_STATS_TOPIC).expect("moving");
    let latest: BTreeMap<String, MovingStats> = moving.into_iter().map(|m| (m.window_start.clone(), m)).collect();
    let w = &latest["2026-11-24T10:00:00Z"];
    assert_eq!((w.window_end.as_str(), w.min, w.max, w.avg, w.trades), ("2026-11-24T10:05:00Z", dec("10"), dec("13"), dec("11.3333"), 3));
    assert_eq!(latest.len(), 9, "windows starting 09:56 through 10:04");
    assert_eq!(latest["2026-11-24T10:04:00Z"].trades, 1);
}

#[test]
fn the_top10_replaces_a_symbols_entry_and_orders_ties_by_symbol() {
    let mut t = Ticker::new(1);
    let day = "2026-11-24T";
    // 12 symbols up by 1..12 %, one down; opens at 100.
    for (i, sym) in ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L"].iter().enumerate() {
        t.trade(sym, "100", 1, &format!("{day}10:00:00-05:00"));
        t.trade(sym, &(101 + i).to_string(), 1, &format!("{day}10:01:00-05:00"));
    }
    t.trade("Z", "100", 1, &format!("{day}10:00:00-05:00"));
    t.trade("Z", "95", 1, &format!("{day}10:01:00-05:00"));
    let top = t.top10().pop().expect("a list");
    let gainers: Vec<&str> = top.gainers.iter().map(|r| r.symbol.as_str()).collect();
    assert_eq!(gainers, vec!["L", "K", "J", "I", "H", "G", "F", "E", "D", "C"]);
    assert_eq!(top.losers.iter().map(|r| (r.symbol.as_str(), r.change_pct)).collect::<Vec<_>>(), vec![("Z", dec("-5.0000"))]);

    // L falls to -5 %: it leaves the gainers (B comes in), joins the losers tied with Z, and is listed once.
    t.trade("L", "95", 1, &format!("{day}10:02:00-05:00"));
    let top = t.top10().pop().expect("a new list");
    let gainers: Vec<&str> = top.gainers.iter().map(|r| r.symbol.as_str()).collect();
    assert_eq!(gainers, vec!["K", "J", "I", "H", "G", "F", "E", "D", "C", "B"]);
    assert_eq!(top.losers.iter().map(|r| r.symbol.as_str()).collect::<Vec<_>>(), vec!["L", "Z"], "ties by symbol ascending");
    // A trade that changes nothing in the ten emits no new list.
    t.trade("A", "101", 1, &format!("{day}10:03:00-05:00"));
    assert!(t.top10().is_empty());
}

#[test]
fn malformed_trades_are_dead_lettered_and_the_rest_keeps_flowing() {
    let mut t = Ticker::new(1);
    let bad: [&[u8]; 6] = [
        b"not json",
        br#"{"symbol": "AAPL", "price": "abc", "volume": 1, "ts": "2026-11-24T10:00:00Z"}"#,
        br#"{"symbol": "AAPL", "price": "0", "volume": 1, "ts": "2026-11-24T10:00:00Z"}"#,
        br#"{"symbol": "AAPL", "price": "1", "volume": -3, "ts": "2026-11-24T10:00:00Z"}"#,
        br#"{"symbol": "aapl; drop", "price": "1", "volume": 1, "ts": "2026-11-24T10:00:00Z"}"#,
        br#"{"symbol": "AAPL", "price": "1", "volume": 1}"#,
    ];
    for b in bad {
        assert!(matches!(t.pipe(Some("AAPL"), b), Outcome::DeadLettered(_)), "{}", String::from_utf8_lossy(b));
    }
    assert_eq!(t.driver.read_output(&t.driver.dead_letter_topic()).len(), 6);
    assert_eq!(t.trade("AAPL", "189.32", 100, "2026-11-24T10:00:00-05:00"), Outcome::Processed);
    assert_eq!(last(&t.daily()).close, dec("189.32"));
}

#[test]
fn prices_no_decimal_holds_and_figures_that_would_overflow_are_dead_lettered_whole() {
    let mut t = Ticker::new(1);
    let forty = br#"{"symbol": "X", "price": 189.3200000000000000000000000000000000001, "volume": 1, "ts": "2026-11-24T10:00:00Z"}"#;
    assert!(matches!(t.pipe(Some("X"), forty), Outcome::DeadLettered(r) if r.contains("cannot be held exactly")));
    assert_eq!(t.trade("X", "0.0000000000000000000001", 1, "2026-11-24T10:00:00-05:00"), Outcome::Processed);
    let moving_before = t.driver.read_output(MOVING_STATS_TOPIC).len();
    assert!(moving_before > 0);
    t.daily();
    // Its change from that open is beyond any decimal: refused by the daily aggregate, and the moving windows,
    // which could have taken it, do not count it either.
    t.trade("X", "79228162514264337593543950335", 1, "2026-11-24T10:01:00-05:00");
    // Refused after the repartition by symbol: the dead letter is the repartitioned copy, with the reason.
    let dlq = t.driver.read_output(&t.driver.dead_letter_topic());
    let reasons: Vec<String> = dlq
        .iter()
        .flat_map(|r| r.headers.iter().filter(|(k, _)| k == "error"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(matches!(reasons.as_slice(), [_, r] if r.contains("too far from the day's open")), "{reasons:?}");
    assert!(t.daily().is_empty() && t.driver.read_output(MOVING_STATS_TOPIC).is_empty(), "nothing of the refused trade is sent");
    assert_eq!(t.trade("X", "0.0000000000000000000002", 1, "2026-11-24T10:02:00-05:00"), Outcome::Processed);
    let daily = t.daily();
    assert_eq!((last(&daily).trades, last(&daily).high), (2, dec("0.0000000000000000000002")));
    let moving: Vec<MovingStats> = t.driver.read_json(MOVING_STATS_TOPIC).expect("moving");
    assert!(moving.iter().all(|m| m.trades <= 2 && m.max < Decimal::ONE), "the refused price is in no window");
}

#[test]
fn a_trade_dated_beyond_max_future_is_dead_lettered_and_moves_no_time() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T16:00:00Z").expect("now").timestamp_millis();
    let mut s = Settings::new("stock-ticker");
    s.close_when_idle = None;
    let mut driver = TopologyTestDriver::new(topology(&s).expect("topology")).with_max_future(std::time::Duration::from_secs(86_400), now);
    // RFC 3339 allows these; a ticker that believed them would send every later trade of the partition to .late.
    for ts in ["+10000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-25T16:00:00.001Z"] {
        let t = serde_json::json!({"symbol": "X", "price": "1", "volume": 1, "ts": ts});
        let outcome = driver.pipe("trades", Some("X"), &serde_json::to_vec(&t).expect("json")).expect("pipe");
        assert!(matches!(&outcome, Outcome::DeadLettered(r) if r.contains("ahead of the wall clock")), "{ts}: {outcome:?}");
    }
    let t = serde_json::json!({"symbol": "X", "price": "2", "volume": 1, "ts": "2026-11-24T15:59:00Z"});
    assert_eq!(driver.pipe("trades", Some("X"), &serde_json::to_vec(&t).expect("json")).expect("pipe"), Outcome::Processed);
    let daily: Vec<DailyStats> = driver.read_json(DAILY_STATS_TOPIC).expect("daily");
    assert_eq!(daily.iter().map(|d| (d.trades, d.close)).collect::<Vec<_>>(), [(1, dec("2"))], "counted, not late");
    assert!(driver.read_output(&driver.late_topic()).is_empty());
}

#[test]
fn the_topic_prefix_reaches_every_topic_of_the_contract_dead_letters_and_late_records_included() {
    let mut s = Settings::new("stock-ticker");
    s.topics = streamcore::TopicNames::prefixed("blue.");
    let mut config = streamcore::StreamsConfig::new("stock-ticker", "");
    config.topics = s.topics.clone();
    let topology = topology(&s).expect("topology");
    let names: Vec<String> = streamcore::runtime::topics_to_create(&topology, &config).into_iter().map(|t| t.name).collect();
    assert!(names.contains(&"blue.stock-ticker.dlq".to_owned()) && names.contains(&"blue.stock-ticker.late".to_owned()), "{names:?}");
    // Internal topics are named by the application id, the deployment's own namespace (Kafka Streams' convention).
    assert!(names.iter().all(|n| n.starts_with("blue.") || n.starts_with("stock-ticker-")), "{names:?}");
    assert!(topology.source_topics().iter().all(|t| t.starts_with("blue.") || t.starts_with("stock-ticker-")));
}

#[test]
fn the_ranking_sends_a_closed_days_change_to_the_late_topic_whatever_order_changes_arrive_in() {
    let mut t = Ticker::new(1);
    let change = |date: &str, pct: &str, ts: &str| {
        serde_json::json!({"symbol": "X", "date": date, "change_pct": pct, "close": "1", "ts": ts}).to_string().into_bytes()
    };
    // A lagging task of sub-topology 1, or a replay: day 24's change arrives after day 30 was seen.
    let on_time = change("2026-11-30", "1.0000", "2026-11-30T06:00:00Z"); // 01:00 in New York
    t.driver.pipe(DAILY_CHANGES_TOPIC, Some("X"), &on_time).expect("pipe");
    assert_eq!(t.top10().len(), 1);
    let stale = change("2026-11-24", "2.0000", "2026-11-24T15:00:00Z");
    assert_eq!(t.driver.pipe(DAILY_CHANGES_TOPIC, Some("X"), &stale).expect("pipe"), Outcome::Processed);
    assert!(t.top10().is_empty(), "no list for a closed day");
    let late = t.driver.read_output(&t.driver.late_topic());
    let [record] = late.as_slice() else { panic!("one late record, got {}", late.len()) };
    let header = |name: &str| record.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert_eq!(header("late.operator").as_deref(), Some("rank"));
    assert!(header("error").is_some_and(|e| e.contains("the day 2026-11-24 had closed")), "{:?}", header("error"));
    // Within the grace (4 h after the end of the day in New York), yesterday still takes changes.
    let yesterday = change("2026-11-29", "3.0000", "2026-11-29T20:00:00Z");
    t.driver.pipe(DAILY_CHANGES_TOPIC, Some("X"), &yesterday).expect("pipe");
    assert!(t.driver.read_output(&t.driver.late_topic()).is_empty());
    assert_eq!(t.top10().iter().map(|l| l.date.to_string()).collect::<Vec<_>>(), ["2026-11-29"]);
}

#[test]
fn the_golden_scenario_produces_the_expected_file() {
    let (batches, expected) = support::golden();
    let mut t = Ticker::new(4);
    let mut dead = 0;
    for input in batches.iter().flatten() {
        if let Outcome::DeadLettered(_) = t.pipe(input.key.as_deref(), &input.value) {
            dead += 1;
        }
    }
    let daily: BTreeMap<(String, String), DailyStats> =
        t.daily().into_iter().map(|s| ((s.date.to_string(), s.symbol.clone()), s)).collect();
    let want: BTreeMap<(String, String), DailyStats> =
        expected.daily.into_iter().map(|s| ((s.date.to_string(), s.symbol.clone()), s)).collect();
    assert_eq!(daily, want);
    let top: BTreeMap<String, Top10> = t.top10().into_iter().map(|l| (l.date.to_string(), l)).collect();
    let want: BTreeMap<String, Top10> = expected.top10.into_iter().map(|l| (l.date.to_string(), l)).collect();
    assert_eq!(top, want);
    assert_eq!(dead, expected.dead_letters);
    assert_eq!(t.late("daily").len(), expected.late_for_daily);
}
