//! Money in exact decimals: the threshold, and conversion to USD with configured rates. Multiplication only, so no
//! conversion ever rounds; a value too large for a decimal is rejected, not wrapped.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;

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
        let amount = Decimal::from_str(amount).map_err(|e| format!("{amount:?} is not a decimal: {e}"))?;
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
            let rate = Decimal::from_str(rate.trim()).map_err(|e| format!("rate for {code}: {e}"))?;
            if rate <= Decimal::ZERO {
                return Err(format!("rate for {code} must be positive"));
            }
            rates.0.insert(code, rate);
        }
        Ok(rates)
    }
}

impl FxRates {
    /// `amount` of `currency` in USD, exactly; `None` for an unknown currency or an overflow.
    pub fn to_usd(&self, amount: Decimal, currency: &str) -> Option<Decimal> {
        amount.checked_mul(*self.0.get(currency)?)
    }
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
        assert_eq!(fx.to_usd(d("10000.00"), "EUR"), Some(d("10800.0000")));
        assert_eq!(fx.to_usd(d("5"), "USD"), Some(d("5")));
        assert_eq!(fx.to_usd(d("5"), "XYZ"), None);
        assert!("EUR=-1".parse::<FxRates>().is_err());
        assert!("EURO=1".parse::<FxRates>().is_err());
    }

    #[test]
    fn conversion_never_rounds_and_overflow_is_refused() {
        let fx: FxRates = "JPY=0.0067".parse().expect("rates");
        assert_eq!(fx.to_usd(d("1492537"), "JPY"), Some(d("9999.9979")));
        assert_eq!(fx.to_usd(d("1492538"), "JPY"), Some(d("10000.0046")));
        assert_eq!(fx.to_usd(Decimal::MAX, "JPY").map(|_| ()), Some(()));
        let fx: FxRates = "XAU=2000".parse().expect("rates");
        assert_eq!(fx.to_usd(Decimal::MAX, "XAU"), None);
    }
}
