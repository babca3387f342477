//! The fault suite's short subset, run by `scripts/test` against its broker: SIGKILLs under both guarantees, a
//! frozen instance and a lost state directory under exactly-once. The broker scenarios restart the broker, which
//! the other tests share, so they run only in the full suite (`scripts/faults`).

use faults::report::{failure, table};
use faults::scenario::{run, Options, Scenario};
use streamcore::runtime::Guarantee;
use streamcore::testkit::kafka::bootstrap;

#[test]
fn the_short_fault_suite_loses_nothing_and_exactly_once_duplicates_nothing() {
    let ticker = faults::ticker_binary();
    assert!(ticker.exists(), "{} is missing: scripts/test builds the binaries first", ticker.display());
    let opts = Options {
        bootstrap: bootstrap(),
        ticker,
        broker: None,
        records: 6_000,
        rate: 600,
        symbols: 20,
        kills: 2,
        standby_replicas: 0,
        preload: 0,
    };
    let runs = [
        (Scenario::Sigkill, Guarantee::AtLeastOnce),
        (Scenario::Sigkill, Guarantee::ExactlyOnce),
        (Scenario::Sigstop, Guarantee::ExactlyOnce),
        (Scenario::LostState, Guarantee::ExactlyOnce),
    ];
    let rows: Vec<_> = runs.iter().map(|&(s, g)| run(s, g, &opts).unwrap_or_else(|e| panic!("{s} under {g}: {e:#}"))).collect();
    eprintln!("{}", table(&rows));
    let failures: Vec<String> = rows.iter().filter_map(failure).collect();
    assert!(failures.is_empty(), "{failures:#?}\n{}", table(&rows));
    // Under exactly-once every aggregate is right even though the instances crashed, froze or lost their state.
    for r in rows.iter().filter(|r| r.guarantee == Guarantee::ExactlyOnce) {
        assert_eq!((r.verdict.duplicates, r.verdict.wrong_aggregates), (0, 0), "{} under exactly-once", r.scenario);
    }
}
