//! Any record on `trades` or on `stock-daily-changes` (which the topology also feeds itself), through the whole
//! topology in the test driver: every outcome is processed or dead-lettered, never a panic or an engine error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use stock_ticker::topology::{topology, Settings, DAILY_CHANGES_TOPIC, TRADES_TOPIC};
use streamcore::testkit::TopologyTestDriver;

struct Ticker {
    driver: TopologyTestDriver,
    fed: u32,
}

fn ticker() -> Ticker {
    let s = Settings::new("stock-ticker");
    Ticker { driver: TopologyTestDriver::new(topology(&s).expect("topology")).with_partitions(2), fed: 0 }
}

thread_local! {
    static TICKER: RefCell<Ticker> = RefCell::new(ticker());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else { return };
    TICKER.with(|cell| {
        let mut t = cell.borrow_mut();
        // State carries over between inputs (so sequences are explored), bounded by starting afresh now and then.
        t.fed += 1;
        if t.fed > 5_000 {
            *t = ticker();
        }
        let key = ["AAPL", "MSFT", "X", ""][usize::from(selector % 4)];
        let key = (!key.is_empty()).then_some(key);
        let topic = if selector & 0x80 == 0 { TRADES_TOPIC } else { DAILY_CHANGES_TOPIC };
        t.driver.pipe(topic, key, value).expect("engine error");
    });
});
