//! The exact decimal parser on any text: it never panics, and what it accepts prints back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamcore::codec::decimal::parse_exact;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = parse_exact(text) {
        assert_eq!(parse_exact(&d.to_string()), Ok(d), "{text:?} does not round-trip");
    }
});
