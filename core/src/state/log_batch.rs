//! A run of changelog records in their order, as a restore reads them: what [`KeyValueStore::apply_log`] applies.
//!
//! A restore replays millions of records, so it must not pay per record what a processor's writes pay (an owned
//! key and value, a sorted map to coalesce them): the records' bytes go one after another into one buffer that is
//! reused batch after batch, and a backend applies them in order, where a later write of a key wins as it did in
//! the changelog.
//!
//! [`KeyValueStore::apply_log`]: super::KeyValueStore::apply_log

/// Changelog records (puts, and deletes for tombstones) in changelog order, their bytes in one buffer.
#[derive(Debug, Default)]
pub struct LogBatch {
    bytes: Vec<u8>,
    /// Per record: where its key ends in `bytes`, and where its value ends (`None`: a delete).
    ends: Vec<(usize, Option<usize>)>,
}

impl LogBatch {
    /// Append a put (`Some`) or a delete (`None`) of `key`.
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        let value_end = value.map(|v| {
            self.bytes.extend_from_slice(v);
            self.bytes.len()
        });
        self.ends.push((key_end, value_end));
    }

    /// The records in order, as (key, value or `None` for a delete).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let mut start = 0;
        self.ends.iter().map(move |&(key_end, value_end)| {
            let key = &self.bytes[start..key_end];
            start = value_end.unwrap_or(key_end);
            (key, value_end.map(|end| &self.bytes[key_end..end]))
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when it holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Forget the records and keep the buffers, for the next batch.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_with_deletes_and_empty_values() {
        let mut batch = LogBatch::default();
        batch.push(b"a", Some(b"1"));
        batch.push(b"b", None);
        batch.push(b"a", Some(b""));
        batch.push(b"", Some(b"empty key"));
        let records: Vec<_> = batch.iter().collect();
        assert_eq!(
            records,
            vec![(&b"a"[..], Some(&b"1"[..])), (&b"b"[..], None), (&b"a"[..], Some(&b""[..])), (&b""[..], Some(&b"empty key"[..]))]
        );
        assert_eq!(batch.len(), 4);
        batch.clear();
        assert!(batch.is_empty() && batch.iter().next().is_none());
    }
}
