//! Money in exact decimals: the threshold, and conversion to USD with configured rates.
//!
//! A conversion is the one place money is rounded, and the contract says how: the exact product of amount and rate,
//! rounded half away from zero to [`USD_PLACES`] places. That rounded value is what rules compare and what alerts
//! show, so an email never states an amount other than the one that crossed the threshold. A rate of 1 (USD itself)
//! converts nothing and rounds nothing. A product too large for a decimal is refused, not wrapped or rounded.

use crate::codec::decimal::parse_exact;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Places after the point of a converted amount.
pub const USD_PLACES: u32 = 4;

/// Why an amount has no USD value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// No rate is configured for the currency.
    #[error("unknown currency {0:?}: no rate is configured for it")]
    UnknownCurrency(String),
    /// The converted amount is larger than a decimal holds.
    #[error("{amount} {currency} is too large to convert to USD exactly")]
    TooLarge {
        /// The amount.
        amount: Decimal,
        /// Its currency.
        currency: String,
    },
}

/// An amount with its currency, e.g. `10000.00 USD` (a bare number means USD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// The amount.
    pub amount: Decimal,
    /// ISO 4217 code.
    pub currency: String,
}

impl FromStr for Money {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split_whitespace();
        let amount = parts.next().ok_or("empty amount")?;
        let amount = parse_exact(amount)?;
        let currency = parts.next().unwrap_or("USD").to_ascii_uppercase();
        if parts.next().is_some() {
            return Err(format!("{s:?}: expected AMOUNT [CURRENCY]"));
        }
        Ok(Money { amount, currency })
    }
}

/// Conversion rates to USD: how many USD one unit of a currency is worth. USD itself is always 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FxRates(BTreeMap<String, Decimal>);

impl Default for FxRates {
    fn default() -> Self {
        FxRates(BTreeMap::from([("USD".to_owned(), Decimal::ONE)]))
    }
}

impl FromStr for FxRates {
    type Err = String;
    /// `EUR=1.08,GBP=1.27`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rates = FxRates::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (code, rate) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not CODE=RATE"))?;
            let code = code.trim().to_ascii_uppercase();
            if code.len() != 3 || !code.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(format!("{code:?} is not a currency code"));
            }
            let rate = parse_exact(rate.trim()).map_err(|e| format!("rate for {code}: {e}"))?;
            if rate <= Decimal::ZERO {
                return Err(format!("rate for {code} must be positive"));
            }
            rates.0.insert(code, rate);
        }
        Ok(rates)
    }
}

impl FxRates {
    /// `amount` of `currency` in USD: unchanged at a rate of 1, else the exact product rounded half away from zero
    /// to [`USD_PLACES`] places.
    pub fn to_usd(&self, amount: Decimal, currency: &str) -> Result<Decimal, MoneyError> {
        let rate = *self.0.get(currency).ok_or_else(|| MoneyError::UnknownCurrency(currency.to_owned()))?;
        if rate == Decimal::ONE {
            return Ok(amount);
        }
        rounded_product(amount, rate).ok_or_else(|| MoneyError::TooLarge { amount, currency: currency.to_owned() })
    }
}

/// `a * b` rounded half away from zero to [`USD_PLACES`] places, computed on the exact 128-bit product of the
/// mantissas (rust_decimal's own `*` would round the product to 28 places first, and a second rounding of that
/// can differ from one rounding of the exact value).
fn rounded_product(a: Decimal, b: Decimal) -> Option<Decimal> {
    let product = a.mantissa().checked_mul(b.mantissa())?;
    let scale = a.scale() + b.scale();
    let rounded = if scale <= USD_PLACES {
        product.checked_mul(10i128.checked_pow(USD_PLACES - scale)?)?
    } else {
        let Some(divisor) = 10i128.checked_pow(scale - USD_PLACES) else {
            return Some(Decimal::new(0, USD_PLACES)); // |product| < 2^127 < half of 10^39
        };
        let remainder = (product % divisor).abs();
        product / divisor + if remainder >= divisor - remainder { product.signum() } else { 0 }
    };
    Decimal::try_from_i128_with_scale(rounded, USD_PLACES).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn parses_thresholds_and_rates() {
        assert_eq!("10000.00 USD".parse::<Money>(), Ok(Money { amount: d("10000.00"), currency: "USD".into() }));
        assert_eq!("9000 eur".parse::<Money>().map(|m| m.currency), Ok("EUR".into()));
        assert!("ten USD".parse::<Money>().is_err());
        let fx: FxRates = "EUR=1.08, gbp=1.27".parse().expect("rates");
        assert_eq!(fx.to_usd(d("10000.00"), "EUR"), Ok(d("10800.0000")));
        assert_eq!(fx.to_usd(d("5"), "USD").map(|v| v.to_string()), Ok("5".into()));
        assert_eq!(fx.to_usd(d("5"), "XYZ"), Err(MoneyError::UnknownCurrency("XYZ".into())));
        assert!("9999.999999999999999999999999999999999999 USD".parse::<Money>().is_err());
        assert!("EUR=-1".parse::<FxRates>().is_err());
        assert!("EURO=1".parse::<FxRates>().is_err());
    }

    #[test]
    fn conversion_rounds_once_half_away_from_zero_to_four_places() {
        let fx: FxRates = "JPY=0.0067,EUR=1.08,XAU=2000,IDR=0.0001".parse().expect("rates");
        assert_eq!(fx.to_usd(d("1492537"), "JPY").map(|v| v.to_string()), Ok("9999.9979".into()));
        assert_eq!(fx.to_usd(d("1492538"), "JPY"), Ok(d("10000.0046")));
        assert_eq!(fx.to_usd(d("0.5"), "IDR").map(|v| v.to_string()), Ok("0.0001".into()));
        assert_eq!(fx.to_usd(d("0.4999"), "IDR"), Ok(Decimal::ZERO));
        assert_eq!(fx.to_usd(d("-0.5"), "IDR"), Ok(d("-0.0001")));
        // The exact product is 9999.99999999999999999999999972: one rounding gives 10000.0000, and that is the amount
        // compared and shown.
        assert_eq!(fx.to_usd(d("9259.259259259259259259259259"), "EUR").map(|v| v.to_string()), Ok("10000.0000".into()));
        // The exact product 0.00004999999999999999999999999999 rounds down; rounding it to 28 places first (as `*` does)
        // would make it 0.00005 and then round it up.
        assert_eq!(fx.to_usd(d("0.4999999999999999999999999999"), "IDR"), Ok(Decimal::ZERO));
        assert!(matches!(fx.to_usd(Decimal::MAX, "XAU"), Err(MoneyError::TooLarge { .. })));
        assert_eq!(fx.to_usd(Decimal::MAX, "USD"), Ok(Decimal::MAX));
    }
}
