//! Any record on `telemetry` or `devices` (tombstones too) through the IoT controller in the test driver,
//! with the wall clock moving so windows close: processed or dead-lettered, never a panic or an engine error.
#![no_main]

use iot_controller::topology::{build_topology, Settings, DEVICES_TOPIC, TELEMETRY_TOPIC};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use streamcore::testkit::TopologyTestDriver;
use streamcore::time::RecordTimestamp;

fn controller() -> (TopologyTestDriver, u32) {
    let settings = Settings::new("iot-controller", prometheus::IntCounter::new("fuzz", "fuzz").expect("counter"));
    (TopologyTestDriver::new(build_topology(&settings).expect("topology")), 0)
}

thread_local! {
    static CONTROLLER: RefCell<(TopologyTestDriver, u32)> = RefCell::new(controller());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else { return };
    CONTROLLER.with(|cell| {
        let mut c = cell.borrow_mut();
        c.1 += 1;
        if c.1 > 5_000 {
            *c = controller();
        }
        let topic = [TELEMETRY_TOPIC, DEVICES_TOPIC][usize::from(selector % 2)];
        let key = ["t-1", "w-1", ""][usize::from((selector >> 1) % 3)];
        let value = (selector & 0x80 == 0).then_some(value);
        c.0.pipe_with(topic, 0, (!key.is_empty()).then_some(key), value, RecordTimestamp::CreateTime(0)).expect("engine error");
        if selector & 0x40 != 0 {
            c.0.advance_wall_clock(std::time::Duration::from_secs(90)).expect("punctuation engine error");
        }
    });
});
