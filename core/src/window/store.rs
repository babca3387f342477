//! The window store: per-window state in an ordinary changelogged key-value store, keyed by (key, window start).
//!
//! A window entry's store key is `w`, the record key's length (4 bytes, big-endian), the key, and the window start
//! (8 bytes, big-endian, sign bit flipped so that earlier windows sort first, before the epoch too). All windows of
//! one key are therefore one contiguous, time-ordered range: what an interactive query for "this symbol's moving
//! windows" reads. A window store shares the changelog, checkpoint and restore machinery of every other store, and
//! its retention is enforced by the aggregation that owns it: a window is deleted (a changelog tombstone) when it
//! closes, at its end plus grace.

use super::aggregate::Windowed;
use crate::query::StoreRegistry;
use crate::state::{Order, StoreError};
use std::ops::Bound;

const WINDOW_TAG: u8 = b'w';

/// The store key of the entry holding the metadata of the aggregation that owns the store (its observed time).
pub(crate) const OBSERVED_TIME_KEY: &[u8] = b"m:observed-time";

/// The store key of `key`'s window starting at `start`.
pub fn window_key(key: &str, start: i64) -> Vec<u8> {
    let mut k = key_prefix(key);
    k.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    k
}

/// The prefix every window of `key` starts with.
pub fn key_prefix(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 13);
    k.push(WINDOW_TAG);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// Whether a store key is a window entry (not metadata).
pub(crate) fn is_window_key(k: &[u8]) -> bool {
    k.first() == Some(&WINDOW_TAG)
}

/// The committed windows of `key` in `store`, earliest first, from whichever local partition holds them.
pub fn fetch<A: serde::de::DeserializeOwned>(registry: &StoreRegistry, store: &str, key: &str) -> Result<Vec<Windowed<A>>, StoreError> {
    let prefix = key_prefix(key);
    let mut end = prefix.clone();
    end.push(0xff);
    registry
        .range(store, Bound::Included(prefix), Bound::Excluded(end), Order::Ascending, usize::MAX)?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| StoreError::Codec {
                store: store.to_owned(),
                key: format!("{k:?}"),
                reason: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_of_a_key_sort_by_start_and_never_mix_with_another_key() {
        let mut keys =
            vec![window_key("AB", 5), window_key("A", 60_000), window_key("A", -60_000), window_key("A", 0), window_key("AB", -5)];
        keys.sort();
        assert_eq!(
            keys,
            vec![window_key("A", -60_000), window_key("A", 0), window_key("A", 60_000), window_key("AB", -5), window_key("AB", 5)]
        );
        assert!(keys.iter().all(|k| is_window_key(k)));
        assert!(!is_window_key(OBSERVED_TIME_KEY));
        // "A" with a start whose bytes spell "B..." still cannot fall inside the range of key "AB": lengths differ.
        assert!(window_key("A", i64::MAX) < key_prefix("AB"));
    }
}
