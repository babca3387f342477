//! Thresholds, rates and conversions on any text: never a panic, and a conversion's result has at most 4 places.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamcore::money::{FxRates, Money, USD_PLACES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (money, rates) = text.split_once('|').unwrap_or((text, "EUR=1.08,JPY=0.0067"));
    let (Ok(m), Ok(fx)) = (money.parse::<Money>(), rates.parse::<FxRates>()) else { return };
    if let Ok(usd) = fx.to_usd(m.amount, &m.currency) {
        assert!(m.currency == "USD" || usd.scale() <= USD_PLACES.max(m.amount.scale()), "{usd} from {money:?} at {rates:?}");
    }
});
