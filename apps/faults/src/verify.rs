//! The verifier: reads what the ticker committed (`isolation.level=read_committed`, as a downstream consumer
//! would) and holds it against the [`Workload`]'s oracle.
//!
//! Every valid trade is one daily-statistics update, so for a symbol with `n` trades the committed updates must
//! carry the trade counts 1, 2, ..., n, each once. A count that never appears is a *missing* output; any update
//! beyond one per count (a repeat, or a count past n from a trade counted twice) is a *duplicate*. The last update
//! of each symbol must equal the oracle's statistics.

use crate::workload::Workload;
use std::collections::BTreeMap;
use std::time::Duration;
use stock_ticker::model::DailyStats;

/// What the committed outputs show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Daily-statistics updates read.
    pub outputs: u64,
    /// Updates the oracle expects that are not there.
    pub missing: u64,
    /// Updates beyond one per expected update.
    pub duplicates: u64,
    /// Symbols whose last update differs from the oracle.
    pub wrong_aggregates: usize,
    /// Dead letters of this run's input.
    pub dead_letters: u64,
    /// Late records refused by the daily windows of this run.
    pub late: u64,
}

/// A record as the verifier needs it.
pub struct Read {
    /// The value.
    pub value: Vec<u8>,
    /// Header values by key.
    pub headers: BTreeMap<String, String>,
}

/// Every committed record of `topic`, from the beginning to the end of each partition.
pub fn read_all(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<Read>> {
    let records = streamcore::testkit::kafka::read_to_end(bootstrap, topic, Duration::from_secs(300))
        .map_err(|e| anyhow::anyhow!("reading {topic} to its end: {e}"))?;
    Ok(records.into_iter().map(|r| Read { value: r.value.unwrap_or_default(), headers: r.headers }).collect())
}

/// Holds the committed `updates` (the daily-statistics topic), dead letters and late records against `workload`.
pub fn verdict(workload: &Workload, updates: &[Read], dead_letters: u64, late: u64) -> anyhow::Result<Verdict> {
    let mut seen: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    let mut last: BTreeMap<String, DailyStats> = BTreeMap::new();
    for r in updates {
        let s: DailyStats = serde_json::from_slice(&r.value)?;
        anyhow::ensure!(s.date == workload.date, "an update for {} on {}: a late trade was counted", s.symbol, s.date);
        *seen.entry(s.symbol.clone()).or_default().entry(s.trades).or_default() += 1;
        last.insert(s.symbol.clone(), s);
    }
    let mut v = Verdict { outputs: updates.len() as u64, dead_letters, late, ..Verdict::default() };
    for (symbol, want) in &workload.expected {
        let counts = seen.get(symbol);
        let present = (1..=want.trades).filter(|k| counts.is_some_and(|c| c.contains_key(k))).count() as u64;
        v.missing += want.trades - present;
        let got = last.get(symbol);
        let right = got.is_some_and(|s| {
            (s.trades, s.volume, s.open, s.close, s.high, s.low) == (want.trades, want.volume, want.open, want.close, want.high, want.low)
        });
        if !right {
            v.wrong_aggregates += 1;
        }
    }
    v.duplicates = v.outputs - (workload.updates() - v.missing);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(symbol: &str, trades: u64, w: &Workload) -> Read {
        let e = &w.expected[symbol];
        let s = DailyStats {
            symbol: symbol.into(),
            date: w.date,
            open: e.open,
            high: e.high,
            low: e.low,
            close: e.close,
            volume: e.volume,
            trades,
            change_pct: rust_decimal::Decimal::ZERO,
        };
        Read { value: serde_json::to_vec(&s).expect("json"), headers: BTreeMap::new() }
    }

    #[test]
    fn missing_and_repeated_counts_are_told_apart() {
        let w = Workload::new(40, 2);
        let n = w.expected["S000"].trades;
        let mut all: Vec<Read> = (1..=n).map(|k| update("S000", k, &w)).chain((1..=n).map(|k| update("S001", k, &w))).collect();
        let exact = verdict(&w, &all, 0, 0).expect("verdict");
        assert_eq!((exact.missing, exact.duplicates, exact.wrong_aggregates), (0, 0, 0));
        all.remove(3);
        all.push(update("S001", n, &w));
        all.push(update("S001", n + 1, &w));
        let v = verdict(&w, &all, 0, 0).expect("verdict");
        assert_eq!((v.missing, v.duplicates, v.wrong_aggregates), (1, 2, 1), "{v:?}");
    }
}
