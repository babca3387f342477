//! The hostile-input suite, short: every kind of bad record on every input topic of the four services, between
//! a few good ones, against the real broker `scripts/test` starts.

use hostile::run::run;
use hostile::services;
use streamcore::testkit::kafka::{bootstrap, unique};

fn check(name: &str, build: fn(&str, &str, usize) -> anyhow::Result<services::Service>) {
    let (prefix, app) = (format!("{}.", unique(&format!("hostile-{name}"))), unique(&format!("hostile-{name}-app")));
    let state = tempfile::tempdir().expect("state");
    let row = run(build(&prefix, &app, 40).expect("service"), &bootstrap(), &prefix, &app, state.path()).expect("run");
    eprintln!("{row:?}");
    assert!(row.passed(), "{row:?}");
}

#[test]
fn the_mailer_dead_letters_every_bad_transaction_and_emails_every_good_one() {
    check("mailer", services::mailer);
}

#[test]
fn the_ticker_dead_letters_every_bad_trade_and_counts_every_good_one() {
    check("ticker", services::ticker);
}

#[test]
fn the_fraud_detector_dead_letters_every_bad_record_and_judges_every_good_transaction() {
    check("fraud", services::fraud);
}

#[test]
fn the_iot_controller_dead_letters_every_bad_record_and_keeps_every_good_reading() {
    check("iot", services::iot);
}
