//! Any record on `card-transactions`, `card-profiles` (tombstones too) or `merchant-blocklist` through the fraud
//! detector in the test driver: processed or dead-lettered, never a panic or an engine error.
#![no_main]

use fraud_detection::rules::Thresholds;
use fraud_detection::topology::{build_topology, Settings, BLOCKLIST_TOPIC, PROFILES_TOPIC, TRANSACTIONS_TOPIC};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use streamcore::testkit::TopologyTestDriver;
use streamcore::time::RecordTimestamp;

fn detector() -> (TopologyTestDriver, u32) {
    let settings = Settings {
        application_id: "fraud-detection".into(),
        topics: Default::default(),
        thresholds: Thresholds::default(),
        fx: "EUR=1.10".parse().expect("fx"),
        without_profile: prometheus::IntCounter::new("fuzz", "fuzz").expect("counter"),
    };
    (TopologyTestDriver::new(build_topology(&settings).expect("topology")), 0)
}

thread_local! {
    static DETECTOR: RefCell<(TopologyTestDriver, u32)> = RefCell::new(detector());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else { return };
    DETECTOR.with(|cell| {
        let mut d = cell.borrow_mut();
        d.1 += 1;
        if d.1 > 5_000 {
            *d = detector();
        }
        let topic = [TRANSACTIONS_TOPIC, PROFILES_TOPIC, BLOCKLIST_TOPIC][usize::from(selector % 3)];
        let key = ["c1", "c2", ""][usize::from((selector >> 2) % 3)];
        let value = (selector & 0x80 == 0).then_some(value);
        let at = RecordTimestamp::CreateTime(1_790_000_000_000);
        d.0.pipe_with(topic, 0, (!key.is_empty()).then_some(key), value, at).expect("engine error");
    });
});
