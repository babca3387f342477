//! `fraud-eval`: how good are the fraud rules? Labelled traffic from `loadgen::cards` goes through the real service on a real
//! broker; the alerts that come out are compared with the ground truth, which never left this process.
//!
//! For each rule: a true positive is a transaction the rule was expected to fire on and did; a false positive,
//! one it fired on and was not expected to; a false negative, one it was expected to fire on and did not.
//! Overall counts a transaction as flagged when any rule fired, and as fraudulent when any was expected.
//!
//! The generator's event times are placed so that the run ends now (the broker refuses record timestamps more
//! than an hour ahead), every record carries its event time as record timestamp (a profile deletion has no `ts`
//! of its own), and the service reads from its own prefixed topics, so evaluations can share a broker.

use anyhow::Context;
use clap::Parser;
use fraud_detection::config::Config;
use fraud_detection::model::{Alert, Rule};
use fraud_detection::topology::{BLOCKLIST_TOPIC, PROFILES_TOPIC, TRANSACTIONS_TOPIC};
use loadgen::cards::{CardEvent, Options};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::Duration;
use streamcore::testkit::kafka::{create_topic, read_topic, unique, wait_caught_up};

/// Counts and ratios of one row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    pub fn_: u64,
}

impl Score {
    /// tp / (tp + fp); 1 when nothing was flagged.
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    /// tp / (tp + fn); 1 when nothing was expected.
    pub fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
    fn count(&mut self, expected: bool, predicted: bool) {
        match (expected, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => {}
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Transactions evaluated (malformed ones excluded).
    pub transactions: u64,
    /// Per rule.
    pub rules: BTreeMap<Rule, Score>,
    /// Any rule.
    pub overall: Score,
}

impl Report {
    /// The table the evaluation command prints.
    pub fn table(&self) -> String {
        let mut s = format!("seed {}, {} transactions\n\n", self.seed, self.transactions);
        let _ = writeln!(s, "| rule | expected | flagged | true pos. | false pos. | false neg. | precision | recall |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        let rows = self.rules.iter().map(|(r, sc)| (r.name(), sc)).chain([("overall (any rule)", &self.overall)]);
        for (name, sc) in rows {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {:.3} | {:.3} |",
                sc.tp + sc.fn_,
                sc.tp + sc.fp,
                sc.tp,
                sc.fp,
                sc.fn_,
                sc.precision(),
                sc.recall()
            );
        }
        s
    }
}

/// Generate `opts`' traffic, run the service over it against `bootstrap`, and score its alerts.
pub async fn evaluate(bootstrap: &str, opts: Options) -> anyhow::Result<Report> {
    let opts = opts.ending_by(chrono::Utc::now());
    let prefix = format!("{}.", unique("fraud-eval"));
    let app = unique("fraud-eval");
    let topics = [TRANSACTIONS_TOPIC, PROFILES_TOPIC, BLOCKLIST_TOPIC].map(|t| format!("{prefix}{t}"));
    let truth = {
        let (bs, topics, opts) = (bootstrap.to_owned(), topics.clone(), opts.clone());
        tokio::task::spawn_blocking(move || {
            create_topic(&bs, &topics[0], 4, false);
            create_topic(&bs, &topics[1], 4, true);
            create_topic(&bs, &topics[2], 1, true);
            let mut truth = BTreeMap::new();
            produce(&bs, [&topics[0], &topics[1], &topics[2]], loadgen::cards::generate(&opts), Some(&mut truth)).map(|_| truth)
        })
        .await??
    };
    let state = tempfile_dir(&app)?;
    let args = [
        "fraud-detection",
        "--bootstrap",
        bootstrap,
        "--application-id",
        &app,
        "--topic-prefix",
        &prefix,
        "--http",
        "127.0.0.1:0",
        "--commit-interval-ms",
        "200",
        "--state-dir",
        &state.display().to_string(),
    ];
    let cfg = Config::try_parse_from(args).context("evaluation configuration")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut service = tokio::spawn(fraud_detection::app::run(cfg, async move {
        let _ = stopped.await;
    }));
    let repartition = streamcore::topology::repartition_topic(&app, fraud_detection::topology::BY_CARD);
    let (bs, input) = (bootstrap.to_owned(), topics[0].clone());
    let caught_up = tokio::task::spawn_blocking(move || {
        [input.as_str(), repartition.as_str()].iter().all(|t| wait_caught_up(&bs, &app, t, Duration::from_secs(600)))
    });
    // A service that stops early has failed: say why instead of waiting for it.
    let caught_up = tokio::select! {
        done = caught_up => done?,
        ended = &mut service => {
            ended.context("service task")??;
            anyhow::bail!("the service stopped before it processed every transaction");
        }
    };
    let _ = stop.send(());
    service.await.context("service task")??;
    anyhow::ensure!(caught_up, "the service did not process every transaction within 10 minutes");

    let alerts_topic = format!("{prefix}fraud-alerts");
    let bs = bootstrap.to_owned();
    let alerts = tokio::task::spawn_blocking(move || read_topic(&bs, &alerts_topic, usize::MAX, Duration::from_secs(5))).await?;
    let mut predicted: BTreeMap<String, BTreeSet<Rule>> = BTreeMap::new();
    for a in alerts {
        let alert: Alert = serde_json::from_slice(a.value.as_deref().unwrap_or(b"null")).context("an alert does not decode")?;
        predicted.entry(alert.txn_id).or_default().extend(alert.rules);
    }
    let _ = std::fs::remove_dir_all(&state);
    Ok(score(opts.seed, &truth, &predicted))
}

/// Score the alerts against the truth: txn id -> expected rule names.
pub fn score(seed: u64, truth: &BTreeMap<String, Vec<&'static str>>, predicted: &BTreeMap<String, BTreeSet<Rule>>) -> Report {
    let mut rules: BTreeMap<Rule, Score> = Rule::ALL.iter().map(|r| (*r, Score::default())).collect();
    let mut overall = Score::default();
    let none = BTreeSet::new();
    for (txn, expected) in truth {
        let got = predicted.get(txn).unwrap_or(&none);
        for (rule, sc) in rules.iter_mut() {
            sc.count(expected.contains(&rule.name()), got.contains(rule));
        }
        overall.count(!expected.is_empty(), !got.is_empty());
    }
    Report { seed, transactions: truth.len() as u64, rules, overall }
}

fn tempfile_dir(app: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(app);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Produce every event to its topic (`[transactions, profiles, blocklist]`), in order, with its event time as record timestamp (profiles have no `ts`
/// of their own); the truth (txn id -> expected rules) into `truth` if given. Returns how many were written.
pub fn produce(
    bootstrap: &str,
    topics: [&str; 3],
    events: impl Iterator<Item = CardEvent>,
    mut truth: Option<&mut BTreeMap<String, Vec<&'static str>>>,
) -> anyhow::Result<u64> {
    let outgoing = events.map(|e| {
        if let (Some(truth), Some(id), None) = (truth.as_deref_mut(), &e.txn_id, e.malformed) {
            truth.insert(id.clone(), e.expected.clone());
        }
        e.outgoing(topics)
    });
    Ok(loadgen::produce::produce_all(bootstrap, &[], outgoing, None)?)
}
