//! Any record on `transactions` through the mailer's topology in the test driver (emails go to a temporary
//! outbox): processed or dead-lettered, never a panic or an engine error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::sync::Arc;
use streamcore::testkit::TopologyTestDriver;
use txn_mailer::mailer::Mailer;
use txn_mailer::topology::{build_topology, Settings};

struct Mailing {
    driver: TopologyTestDriver,
    _outbox: tempfile::TempDir,
    fed: u32,
}

fn mailing() -> Mailing {
    let outbox = tempfile::tempdir().expect("outbox");
    let settings = Settings {
        application_id: "txn-mailer".into(),
        input_topic: "transactions".into(),
        alerts_topic: "high-value-alerts".into(),
        threshold: "10000.00 USD".parse().expect("threshold"),
        fx: "EUR=1.08,JPY=0.0067".parse().expect("fx"),
        default_rep: Some("desk@example.com".into()),
    };
    let mailer = Mailer::outbox(outbox.path(), "txn-mailer@example.com").expect("mailer");
    let driver = TopologyTestDriver::new(build_topology(&settings, Arc::new(mailer)).expect("topology")).with_partitions(2);
    Mailing { driver, _outbox: outbox, fed: 0 }
}

thread_local! {
    static MAILING: RefCell<Mailing> = RefCell::new(mailing());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else { return };
    MAILING.with(|cell| {
        let mut m = cell.borrow_mut();
        m.fed += 1;
        if m.fed > 2_000 {
            *m = mailing();
        }
        let key = ["acc-1", "acc-2", ""][usize::from(selector % 3)];
        m.driver.pipe("transactions", (!key.is_empty()).then_some(key), value).expect("engine error");
    });
});
