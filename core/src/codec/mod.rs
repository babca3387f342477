//! Bytes on the wire to typed events and back.
//!
//! Events are UTF-8 JSON. A codec that fails says why in a sentence, because that sentence becomes the `error`
//! header of the dead-letter copy. Money is `rust_decimal`: with serde_json's `arbitrary_precision`, a JSON number
//! like `12500.10` reaches [`decimal::exact`] as its digits, never as a binary float, and a value with more digits
//! than a decimal holds is refused rather than rounded.

pub mod decimal;

use std::marker::PhantomData;

/// Turns value bytes into a typed event.
pub trait Deserializer<V>: Send + Sync {
    /// Decode, or say in one sentence why not.
    fn deserialize(&self, bytes: &[u8]) -> Result<V, String>;
}

/// Turns a typed event into value bytes.
pub trait Serializer<V>: Send + Sync {
    /// Encode, or say why not.
    fn serialize(&self, value: &V) -> Result<Vec<u8>, String>;
}

/// The JSON codec for any serde type.
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// A JSON codec for `T`.
    pub fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: serde::de::DeserializeOwned> Deserializer<T> for Json<T> {
    fn deserialize(&self, bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => format!("not JSON: {e}"),
            _ => format!("invalid event: {e}"),
        })
    }
}

impl<T: serde::Serialize> Serializer<T> for Json<T> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct Price {
        #[serde(deserialize_with = "super::decimal::exact")]
        amount: Decimal,
    }

    #[test]
    fn json_numbers_become_decimals_without_floats() {
        // 0.1 + 0.2 style values and more digits than an f64 holds survive exactly.
        let p: Price = Json::new().deserialize(br#"{"amount": 12345678901234.12345678}"#).expect("decodes");
        assert_eq!(p.amount, Decimal::from_str("12345678901234.12345678").expect("decimal"));
        let s: Price = Json::new().deserialize(br#"{"amount": "10000.00"}"#).expect("decodes");
        assert_eq!(s.amount.to_string(), "10000.00");
        assert_eq!(Json::new().serialize(&s).expect("encodes"), br#"{"amount":"10000.00"}"#.to_vec());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let d: &dyn Deserializer<Price> = &Json::new();
        assert!(d.deserialize(b"{oops").expect_err("rejected").starts_with("not JSON"));
        assert!(d.deserialize(br#"{"amount": true}"#).expect_err("rejected").starts_with("invalid event"));
    }
}
