//! Any record on `trades` (and, through stage 1, on `stock-daily-changes`), through both stages in the test
//! driver: every outcome is processed or dead-lettered, never a panic or an engine error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use stock_ticker::topology::{ranking_topology, trades_topology, Settings, DAILY_CHANGES_TOPIC, TRADES_TOPIC};
use streamcore::testkit::TopologyTestDriver;

struct Stages {
    stage1: TopologyTestDriver,
    stage2: TopologyTestDriver,
    fed: u32,
}

fn stages() -> Stages {
    let s = Settings::new("stock-ticker");
    Stages {
        stage1: TopologyTestDriver::new(trades_topology(&s).expect("stage 1")).with_partitions(2),
        stage2: TopologyTestDriver::new(ranking_topology(&s).expect("stage 2")),
        fed: 0,
    }
}

thread_local! {
    static STAGES: RefCell<Stages> = RefCell::new(stages());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else { return };
    STAGES.with(|cell| {
        let mut st = cell.borrow_mut();
        // State carries over between inputs (so sequences are explored), bounded by starting afresh now and then.
        st.fed += 1;
        if st.fed > 5_000 {
            *st = stages();
        }
        let key = ["AAPL", "MSFT", "X", ""][usize::from(selector % 4)];
        let key = (!key.is_empty()).then_some(key);
        if selector & 0x80 == 0 {
            st.stage1.pipe(TRADES_TOPIC, key, value).expect("stage 1 engine error");
            let changes = st.stage1.read_output(DAILY_CHANGES_TOPIC);
            for c in changes {
                let key = c.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned());
                st.stage2.pipe(DAILY_CHANGES_TOPIC, key.as_deref(), c.value.as_deref().unwrap_or_default()).expect("stage 2 engine error");
            }
        } else {
            st.stage2.pipe(DAILY_CHANGES_TOPIC, key, value).expect("stage 2 engine error");
        }
    });
});
