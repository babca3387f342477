//! The hostile-input suite (issue 16): the contract says bad input never stops a service and never bends a result.
//! [`cases`] makes every kind of bad record for an input topic, [`services`] runs the four services in process on
//! the streamcore runtime, and [`run`] sends good and bad records interleaved to a real broker and checks that
//! each bad record reached the dead-letter topic with a reason, each good record its output, and that no stream
//! thread restarted. `hostile` (the binary) runs all four and prints the table; `tests/broker.rs` runs a short
//! version in `scripts/test`.

pub mod cases;
pub mod run;
pub mod services;
