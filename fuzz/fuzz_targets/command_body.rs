//! The command API's request body on any bytes: decoded or refused with a reason, never a panic.
#![no_main]

use iot_controller::api::CommandRequest;
use iot_controller::model::Action;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = CommandRequest::parse(data) {
        let _ = Action::parse(&req.action);
    }
});
