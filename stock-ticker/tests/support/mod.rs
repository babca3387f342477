//! The golden scenario's files, read the same way by the driver test and the broker test.

#![allow(unreachable_pub)]

use stock_ticker::model::{DailyStats, Top10};

/// One input record.
pub struct Input {
    pub key: Option<String>,
    pub value: Vec<u8>,
}

/// What the scenario must produce, in its final state.
#[derive(serde::Deserialize)]
pub struct Expected {
    pub daily: Vec<DailyStats>,
    pub top10: Vec<Top10>,
    pub dead_letters: usize,
    pub late_for_daily: usize,
}

/// `tests/golden/trades.jsonl` in batches, and `tests/golden/expected.json`.
pub fn golden() -> (Vec<Vec<Input>>, Expected) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let text = std::fs::read_to_string(dir.join("trades.jsonl")).expect("golden input");
    let mut batches = vec![Vec::new()];
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line == "barrier" {
            batches.push(Vec::new());
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).expect("golden line is JSON");
        let key = v["key"].as_str().map(str::to_owned);
        let value = match (v.get("value"), v.get("raw").and_then(|r| r.as_str())) {
            (Some(value), _) => serde_json::to_vec(value).expect("encode"),
            (None, Some(raw)) => raw.as_bytes().to_vec(),
            (None, None) => panic!("golden line without value or raw: {line}"),
        };
        batches.last_mut().expect("a batch").push(Input { key, value });
    }
    let expected = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).expect("expected")).expect("expected.json decodes");
    (batches, expected)
}
