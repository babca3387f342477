//! What hostile input looks like: for an input topic with a good record to start from, every kind of bad record a
//! producer can send, each with what the service must do with it.
//!
//! The kinds: empty and null values, a value of about 1 MB, deep nesting, invalid UTF-8, not JSON, wrong types,
//! missing fields, NaN and infinite numbers, 40-digit and zero and negative amounts, timestamps far past, far
//! future and without a zone, binary and missing keys, and tombstones on a stream. A stream record without a key
//! is valid (every service re-keys by a field of the value), and so is a record dated 1970 (late where windows
//! keep it, an output elsewhere): they are sent to show that what only looks hostile is not refused.

use serde_json::{json, Value};

/// What the service must do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Dead-letter it, with a reason.
    DeadLetter,
    /// Count it as a good record: it has its output.
    Output,
    /// Valid, and processed, but it changes no output the suite counts (an old reading behind a newer one).
    Processed,
    /// Send it to `<service>.late` (a window it belongs to closed long ago).
    Late,
}

/// One record to send.
#[derive(Debug, Clone)]
pub struct Case {
    /// What kind of record it is.
    pub name: String,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
    /// What must become of it.
    pub expect: Expect,
}

/// An input topic as the suite attacks it: a good record to vary, and what its fields mean.
pub struct Target {
    /// The good record's key.
    pub key: String,
    /// The good record.
    pub good: Value,
    /// The field holding money, a price or a measurement, if any.
    pub decimal_field: Option<&'static str>,
    /// The event-time field, if any.
    pub ts_field: Option<&'static str>,
    /// A field the record cannot do without.
    pub required_field: &'static str,
    /// A table topic (a key is required; a tombstone is a valid delete).
    pub table: bool,
    /// What a record dated 1970 becomes: late in a windowed service, an output elsewhere.
    pub far_past: Expect,
    /// What a stream record without a key becomes (an output, or processed where the output is per entity).
    pub keyless: Expect,
    /// The business id field, made unique per case, so that valid cases are not taken for duplicates.
    pub id_field: Option<&'static str>,
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    serde_json::to_vec(v).ok()
}

impl Target {
    /// Every bad record for this topic (and the records that only look hostile and are valid, marked so).
    pub fn cases(&self) -> Vec<Case> {
        let key = Some(self.key.clone().into_bytes());
        let case = |name: &str, key: Option<Vec<u8>>, value: Option<Vec<u8>>, expect| Case { name: name.into(), key, value, expect };
        let with = |field: &str, v: Value| {
            let mut g = self.good.clone();
            g[field] = v;
            bytes(&g)
        };
        let raw_with = |field: &str, raw: &str| {
            let text = serde_json::to_string(&self.good).unwrap_or_default();
            let needle = format!("\"{field}\":");
            let at = text.find(&needle).map(|i| i + needle.len());
            at.map(|i| {
                let rest = &text[i..];
                let end = rest.find([',', '}']).unwrap_or(rest.len());
                format!("{}{raw}{}", &text[..i], &rest[end..]).into_bytes()
            })
        };
        let mut missing = self.good.clone();
        if let Some(o) = missing.as_object_mut() {
            o.remove(self.required_field);
        }
        let mut cases = vec![
            case("empty value", key.clone(), Some(Vec::new()), Expect::DeadLetter),
            case("1 MB value", key.clone(), Some(vec![b'{'; 999_000]), Expect::DeadLetter),
            case(
                "deep nesting",
                key.clone(),
                Some(format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes()),
                Expect::DeadLetter,
            ),
            case("invalid UTF-8", key.clone(), Some(b"{\"x\": \"\xff\xfe\"}".to_vec()), Expect::DeadLetter),
            case("not JSON", key.clone(), Some(b"hello, world".to_vec()), Expect::DeadLetter),
            case("JSON, not an object", key.clone(), Some(b"[1, 2, 3]".to_vec()), Expect::DeadLetter),
            case("wrong type", key.clone(), with(self.required_field, json!({"nested": [1, 2]})), Expect::DeadLetter),
            case("missing field", key.clone(), bytes(&missing), Expect::DeadLetter),
            case("binary key", Some(vec![0xff, 0x00, 0xfe]), bytes(&self.good), Expect::DeadLetter),
        ];
        // A table topic is compacted, and the broker itself refuses a record without a key there, so only a stream
        // can be sent one; a tombstone is a table's delete, and bad input only on a stream.
        if !self.table {
            cases.push(case("no key", None, bytes(&self.good), self.keyless));
            cases.push(case("tombstone on a stream", key.clone(), None, Expect::DeadLetter));
        }
        if let Some(f) = self.decimal_field {
            cases.extend([
                case("NaN (not JSON)", key.clone(), raw_with(f, "NaN"), Expect::DeadLetter),
                case("NaN as a string", key.clone(), with(f, json!("NaN")), Expect::DeadLetter),
                case("infinite number", key.clone(), raw_with(f, "1e999"), Expect::DeadLetter),
                case("40 digits", key.clone(), raw_with(f, "9999.999999999999999999999999999999999999"), Expect::DeadLetter),
                case("a number in words", key.clone(), with(f, json!("ten")), Expect::DeadLetter),
            ]);
        }
        if let Some(f) = self.ts_field {
            cases.extend([
                case("year 10000", key.clone(), with(f, json!("+10000-01-01T00:00:00Z")), Expect::DeadLetter),
                case("year 9999", key.clone(), with(f, json!("9999-12-31T23:59:59Z")), Expect::DeadLetter),
                case("no zone", key.clone(), with(f, json!("2026-11-24T10:00:00")), Expect::DeadLetter),
                case("a number for a time", key.clone(), with(f, json!(1_790_000_000_000_i64)), Expect::DeadLetter),
                case("far past", key.clone(), with(f, json!("1970-01-02T00:00:00Z")), self.far_past),
            ]);
        }
        if let Some(id) = self.id_field {
            for (i, c) in cases.iter_mut().enumerate() {
                let Some(mut v) = c.value.as_deref().and_then(|b| serde_json::from_slice::<Value>(b).ok()) else { continue };
                if v.get(id).is_some_and(|x| x == &self.good[id]) && v.as_object().is_some_and(|o| o.len() > 1) {
                    v[id] = json!(format!("{}-case-{i}", self.good[id].as_str().unwrap_or("id")));
                    c.value = bytes(&v);
                }
            }
        }
        cases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_generated_and_raw_edits_hit_the_field() {
        let t = Target {
            key: "k".into(),
            good: json!({"id": "a", "amount": "1.5", "ts": "2026-11-24T10:00:00Z"}),
            decimal_field: Some("amount"),
            ts_field: Some("ts"),
            required_field: "id",
            table: false,
            far_past: Expect::Output,
            keyless: Expect::Output,
            id_field: None,
        };
        let cases = t.cases();
        assert_eq!(cases.len(), 21);
        let nan = cases.iter().find(|c| c.name == "NaN (not JSON)").and_then(|c| c.value.clone()).expect("NaN case");
        assert_eq!(String::from_utf8_lossy(&nan), r#"{"amount":NaN,"id":"a","ts":"2026-11-24T10:00:00Z"}"#);
        assert!(cases.iter().filter(|c| c.name != "far past" && c.name != "no key").all(|c| c.expect == Expect::DeadLetter));
    }
}
