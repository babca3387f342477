//! Against the real broker `scripts/test` started: the evaluation on a fixed seed meets the aim (recall >= 0.95
//! and precision >= 0.90 on every rule at a 1% fraud rate).

use fraud_detection::model::Rule;
use streamcore::testkit::kafka::bootstrap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evaluation_on_a_fixed_seed_meets_the_aim() {
    let opts = loadgen::cards::Options {
        seed: 20261124,
        cards: 1500,
        transactions: 60_000,
        fraud_rate: 0.01,
        wrong_key_share: 0.02,
        malformed_share: 0.001,
        spacing_ms: 5_000,
        ..Default::default()
    };
    let report = fraud_eval::evaluate(&bootstrap(), opts).await.expect("evaluation");
    println!("{}", report.table());
    for rule in Rule::ALL {
        let s = &report.rules[&rule];
        assert!(s.tp + s.fn_ >= 20, "{}: too few injected to judge\n{}", rule.name(), report.table());
        assert!(s.recall() >= 0.95 && s.precision() >= 0.90, "{} misses the aim\n{}", rule.name(), report.table());
    }
}
