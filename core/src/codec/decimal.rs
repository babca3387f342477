//! Decimals exactly as the producer wrote them, or an error.
//!
//! `rust_decimal` holds 96 bits of digits and at most 28 after the point; its own parser rounds anything longer
//! without a word, so `9999.999999999999999999999999999999999999` would become `10000` and cross a threshold it is
//! below. These decoders read a JSON number (through serde_json's `arbitrary_precision`, as its digits) or a string,
//! and refuse a value that cannot be held exactly: bad input for the dead-letter topic, not a silent rounding.
//! Trailing zeros after the point are only dropped when the value would not fit with them, so `10000.00` keeps
//! its two places.

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::Deserialize;

/// The most an exponent may shift the point: beyond it no decimal can hold the value anyway.
const MAX_EXPONENT: i64 = 64;

/// Parse `text` (`12.50`, `-3`, `1.25e3`) into the decimal it denotes, exactly, or say why not.
pub fn parse_exact(text: &str) -> Result<Decimal, String> {
    // Nearly every value is written plainly and fits: read it as it is, without the copies `normalized` makes (a
    // tenth of the time, measured on one core). Anything else, or a plain value that does not fit as written, goes
    // the long way.
    if is_plain(text) {
        if let Ok(d) = Decimal::from_str_exact(text) {
            return Ok(d);
        }
    }
    normalized(text)
}

/// `-12.50`: an optional minus, digits, and a point with digits after it or none. rust_decimal's parser reads such
/// text as [`plain_digits`] would write it (it also takes `_` and `+`, which are not plain).
fn is_plain(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match unsigned.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(unsigned),
    }
}

/// [`parse_exact`] the long way: exponent applied, leading zeros dropped, trailing zeros after the point dropped
/// when the value would not fit with them.
fn normalized(text: &str) -> Result<Decimal, String> {
    let plain = plain_digits(text).ok_or_else(|| format!("{text:?} is not a decimal number"))?;
    Decimal::from_str_exact(&plain)
        .or_else(|_| match plain.split_once('.') {
            Some((int, frac)) => Decimal::from_str_exact(&format!("{int}.{}", frac.trim_end_matches('0'))),
            None => Err(rust_decimal::Error::ExceedsMaximumPossibleValue),
        })
        .map_err(|_| format!("{text} cannot be held exactly (at most 28 digits after the point and 96 bits in all)"))
}

/// `text` without an exponent and without leading zeros: `-1.5e2` is `-150`, `0.25E-1` is `0.025`.
fn plain_digits(text: &str) -> Option<String> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok().filter(|e| e.abs() <= MAX_EXPONENT)?),
        None => (text, 0),
    };
    let (sign, unsigned) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exponent;
    let (int, frac) = if point <= 0 {
        (String::from("0"), format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)))
    } else if point as usize >= digits.len() {
        (format!("{digits}{}", "0".repeat(point as usize - digits.len())), String::new())
    } else {
        let (i, f) = digits.split_at(point as usize);
        (i.to_owned(), f.to_owned())
    };
    let int = match int.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    Some(if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") })
}

/// A JSON number or string as it was written: what a serde field of money or a measurement deserializes with.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Number(serde_json::Number),
    Text(String),
}

impl Written {
    fn text(&self) -> &str {
        match self {
            Written::Number(n) => n.as_str(),
            Written::Text(s) => s,
        }
    }
}

/// `#[serde(deserialize_with = "streamcore::codec::decimal::exact")]`: a decimal field read exactly.
pub fn exact<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let written = Written::deserialize(d).map_err(|_| D::Error::custom("expected a decimal number or string"))?;
    parse_exact(written.text()).map_err(D::Error::custom)
}

/// [`exact`] for an optional field: `null` or absent is `None`.
pub fn exact_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<Written>::deserialize(d).map_err(|_| D::Error::custom("expected a decimal number or string"))? {
        Some(written) => parse_exact(written.text()).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn values_are_read_as_written() {
        assert_eq!(parse_exact("10000.00").map(|v| v.to_string()), Ok("10000.00".into()));
        assert_eq!(parse_exact("-1.5e2"), Ok(d("-150")));
        assert_eq!(parse_exact("0.25E-1"), Ok(d("0.025")));
        assert_eq!(parse_exact("+007"), Ok(d("7")));
        assert_eq!(parse_exact(".5"), Ok(d("0.5")));
        assert_eq!(parse_exact("79228162514264337593543950335"), Ok(Decimal::MAX));
        // Exactly representable once the zeros that do not fit are dropped.
        assert_eq!(parse_exact(&format!("1.{}", "0".repeat(40))), Ok(Decimal::ONE));
    }

    #[test]
    fn values_that_cannot_be_held_exactly_are_refused() {
        for bad in [
            "9999.999999999999999999999999999999999999",
            "79228162514264337593543950336",
            "0.00000000000000000000000000001",
            "1e65",
            "1e-29",
            "NaN",
            "Infinity",
            "",
            "-",
            "1.2.3",
            "0x10",
            "1e",
        ] {
            assert!(parse_exact(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_exact("9999.999999999999999999999999999999999999").expect_err("refused").contains("exactly"));
    }

    proptest::proptest! {
        /// The short way gives what the long way gives, scale included, for plain text of every length: leading
        /// zeros, more places than fit, more digits than 96 bits hold.
        #[test]
        fn plain_text_reads_as_the_long_way_reads_it(minus in proptest::bool::ANY, int in "[0-9]{1,32}", frac in proptest::option::of("[0-9]{1,32}")) {
            let text = format!("{}{int}{}", if minus { "-" } else { "" }, frac.map(|f| format!(".{f}")).unwrap_or_default());
            let (short, long) = (parse_exact(&text), normalized(&text));
            proptest::prop_assert_eq!(short.as_ref().map(|d| (d.to_string(), d.scale())), long.as_ref().map(|d| (d.to_string(), d.scale())), "{}", text);
        }
    }

    #[derive(Deserialize, Debug)]
    struct Amount {
        #[serde(deserialize_with = "exact")]
        amount: Decimal,
        #[serde(default, deserialize_with = "exact_option")]
        limit: Option<Decimal>,
    }

    fn amount(json: &str) -> Result<Amount, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn json_numbers_and_strings_decode_exactly() {
        let a = amount(r#"{"amount": 12345678901234.12345678, "limit": "5.0"}"#).expect("decodes");
        assert_eq!((a.amount, a.limit), (d("12345678901234.12345678"), Some(d("5.0"))));
        assert_eq!(amount(r#"{"amount": 1, "limit": null}"#).expect("decodes").limit, None);
        let e = amount(r#"{"amount": 9999.999999999999999999999999999999999999}"#).expect_err("refused");
        assert!(e.contains("cannot be held exactly"), "{e}");
        assert!(amount(r#"{"amount": true}"#).is_err());
        assert!(amount(r#"{"amount": "1", "limit": [1]}"#).is_err());
    }
}
