//! The README's main command, run as users run it (the demo binary on librdkafka's in-process mock cluster, so no
//! broker is involved here): each of the four services processes everything, the outbox holds exactly the
//! emails an independent oracle expects, and the live page, rendered by headless Chromium, shows what the
//! services answer.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A small demo on free ports: `(arguments, page port)`.
fn demo_args(seed: u64, outbox: &std::path::Path) -> (Vec<String>, u16) {
    let page = free_port();
    let mut args: Vec<String> = [
        "--count",
        "600",
        "--trades",
        "3000",
        "--card-transactions",
        "3000",
        "--homes",
        "4",
        "--device-minutes",
        "15",
        "--speedup",
        "120",
        "--rate",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--seed".into(), seed.to_string(), "--page-http".into(), format!("127.0.0.1:{page}")]);
    for flag in ["--mailer-http", "--ticker-http", "--fraud-http", "--iot-http"] {
        args.extend([flag.to_owned(), format!("127.0.0.1:{}", free_port())]);
    }
    args.extend(["--outbox".into(), outbox.display().to_string()]);
    (args, page)
}

fn emails(outbox: &std::path::Path) -> usize {
    std::fs::read_dir(outbox).expect("outbox").filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count()
}

#[test]
fn demo_processes_everything_and_mails_exactly_the_high_value_transactions() {
    let outbox = tempfile::tempdir().expect("outbox");
    let (args, _) = demo_args(9, outbox.path());
    let out = Command::new(env!("CARGO_BIN_EXE_demo")).args(&args).arg("--exit-when-done").output().expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("IN-MEMORY MODE"), "the demo says it runs on the mock cluster:\n{stdout}");
    assert!(stdout.contains("every application caught up: txn-mailer, stock-ticker, fraud-detection, iot-controller"), "{stdout}");

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
    assert_eq!(emails(outbox.path()), expected);
    assert!(stdout.contains(&format!("done: 600 transactions processed, {expected} emails")), "{stdout}");
}

/// GET from the demo's page server: the JSON body (the test fails on any other status).
fn get_json(port: u16, path: &str) -> serde_json::Value {
    let body = get_text(port, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Debian's Chromium, headless, with a fresh profile and no background traffic, once the page's scripts have run
/// for `budget_ms` of virtual time: what `output` asks for (`--dump-dom`, or `--screenshot=PATH`) and its stdout.
fn chromium(url: &str, budget_ms: u32, output: &str) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,2600",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--virtual-time-budget={budget_ms}"),
            output,
            url,
        ])
        .output()
        .expect("chromium must be installed (.ci/run installs Debian's chromium)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `attribute` on the element whose `data-chart` is `chart` in a dumped DOM.
fn chart_attribute<'a>(dom: &'a str, chart: &str, attribute: &str) -> Option<&'a str> {
    let element = &dom[dom.find(&format!("data-chart=\"{chart}\""))?..];
    let element = &element[..element.find('>')?];
    let value = &element[element.find(&format!("{attribute}=\""))? + attribute.len() + 2..];
    Some(&value[..value.find('"')?])
}

/// The distinct node ids of a Mermaid flowchart as `to_mermaid()` writes it: the word that begins each side of an
/// edge or a declaration line.
fn mermaid_nodes(source: &str) -> std::collections::BTreeSet<String> {
    source
        .lines()
        .skip(1)
        .flat_map(|line| line.split(" --> ").flat_map(|side| side.split(" -.- ")).map(str::trim).collect::<Vec<_>>())
        .map(|side| side.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
        .filter(|id| !id.is_empty())
        .collect()
}

/// GET from the demo's page server: the body as text (the test fails on any other status than 200).
fn get_text(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}\n{body}");
    body.to_owned()
}

/// The demo process, killed if the test fails before it stops it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_live_page_shows_what_the_services_answer() {
    let outbox = tempfile::tempdir().expect("outbox");
    let (args, page) = demo_args(5, outbox.path());
    let mut demo = Running(Command::new(env!("CARGO_BIN_EXE_demo")).args(&args).stdout(Stdio::piped()).spawn().expect("start demo"));
    let stdout = demo.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("demo output");
        seen.push(line.clone());
        if line.contains("every application caught up") {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("every application caught up")), "the demo stopped early:\n{}", seen.join("\n"));

    let top10 = get_json(page, "/svc/stock-ticker/top10");
    let alerts = get_json(page, "/svc/fraud-detection/alerts?limit=10");
    let home = get_json(page, "/svc/iot-controller/homes/home-0/devices");
    let mails = get_json(page, "/api/mails");
    let history = get_json(page, "/api/history");
    let url = format!("http://127.0.0.1:{page}/");
    let dom = chromium(&url, 5000, "--dump-dom");

    assert!(dom.contains("IN-MEMORY MODE"), "{dom}");
    for section in ["top10", "symbol", "alerts", "devices", "thermostats", "mails", "topology"] {
        assert!(dom.contains(&format!("id=\"{section}\" data-loaded=\"true\"")), "section {section} never loaded:\n{dom}");
    }
    let date = top10["date"].as_str().expect("date");
    assert!(dom.contains(&format!("Trading day {date}")), "{dom}");
    for r in top10["gainers"].as_array().into_iter().chain(top10["losers"].as_array()).flatten() {
        let (symbol, change) = (r["symbol"].as_str().expect("symbol"), r["change_pct"].as_str().expect("change"));
        assert!(
            dom.contains(&format!("<td>{symbol}</td><td class=\"num up\">{change} %</td>"))
                || dom.contains(&format!("<td>{symbol}</td><td class=\"num down\">{change} %</td>")),
            "{symbol} {change} not shown:\n{dom}"
        );
    }
    let alerts = alerts.as_array().expect("alerts");
    assert!(!alerts.is_empty(), "the card traffic has frauds");
    for a in alerts {
        assert!(dom.contains(&format!("<td>{}</td>", a["alert_id"].as_str().expect("id"))), "alert {a} not shown");
    }
    for d in home["devices"].as_array().expect("devices") {
        assert!(dom.contains(&format!("<td>{}</td>", d["device_id"].as_str().expect("id"))), "device {d} not shown");
    }

    // The pictures: every moving window of the top symbol, every thermostat reading kept, one line per rule over
    // every minute with alerts, and every node of the stock ticker's topology.
    let top = top10["gainers"].as_array().into_iter().chain(top10["losers"].as_array()).flatten().next().expect("a ranked symbol");
    let moving = get_json(page, &format!("/svc/stock-ticker/stocks/{}/moving?limit=60", top["symbol"].as_str().expect("symbol")));
    let windows = moving.as_array().expect("windows").len();
    assert!(windows > 1, "the top symbol has several moving windows");
    assert_eq!(chart_attribute(&dom, "price", "data-points"), Some(windows.to_string().as_str()), "{dom}");

    let per_minute = history["alerts_per_minute"].as_object().expect("alerts per minute");
    let rules: std::collections::BTreeSet<&String> = per_minute.values().flat_map(|m| m.as_object().expect("rules").keys()).collect();
    let all_alerts = get_json(page, "/svc/fraud-detection/alerts?limit=1000");
    let named: u64 = all_alerts.as_array().expect("alerts").iter().map(|a| a["rules"].as_array().expect("rules").len() as u64).sum();
    let counted: u64 = per_minute.values().flat_map(|m| m.as_object().expect("rules").values()).map(|n| n.as_u64().expect("count")).sum();
    assert_eq!(counted, named, "the page counted every rule of every alert the detector keeps");
    assert_eq!(chart_attribute(&dom, "alerts", "data-points"), Some((rules.len() * per_minute.len()).to_string().as_str()), "{dom}");

    let thermostats = history["thermostats"].as_object().expect("thermostats");
    let drawn: Vec<&String> = thermostats.keys().filter(|id| id.starts_with("thermostat-")).take(4).collect();
    assert!(!drawn.is_empty(), "the homes' thermostats report");
    for id in drawn {
        let readings = thermostats[id]["readings"].as_array().expect("readings").len();
        assert!(readings > 1, "{id} reported more than once");
        assert_eq!(chart_attribute(&dom, &format!("thermostat-{id}"), "data-points"), Some(readings.to_string().as_str()), "{id}: {dom}");
    }
    let commands: usize = thermostats.values().map(|t| t["commands"].as_array().expect("commands").len()).sum();
    assert!(commands > 0, "the controller sent thermostats commands");

    let mermaid = get_text(page, "/svc/stock-ticker/topology?format=mermaid");
    assert_eq!(chart_attribute(&dom, "topology", "data-nodes"), Some(mermaid_nodes(&mermaid).len().to_string().as_str()), "{dom}");
    for name in ["trades-source", "by-symbol-repartition-sink", "rank", "top10-sink"] {
        assert!(dom.contains(&format!(">{name}<")) || dom.contains(&format!(">{name} · ")), "the topology shows {name}");
    }

    // A picture of it all, for people: the path is printed (cargo test -- --nocapture shows it).
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-page.png");
    chromium(&url, 5000, &format!("--screenshot={}", screenshot.display()));
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000), "a screenshot at {}", screenshot.display());
    println!("the live page: {}", screenshot.display());

    let count = mails["count"].as_u64().expect("count");
    assert_eq!(count as usize, emails(outbox.path()));
    assert!(dom.contains(&format!("{count} mails in the outbox")), "{dom}");

    let _ = Command::new("kill").args(["-INT", &demo.0.id().to_string()]).status();
    let status = demo.0.wait().expect("demo exits");
    assert!(status.success(), "the demo exits cleanly on Ctrl-C: {status}");
}
