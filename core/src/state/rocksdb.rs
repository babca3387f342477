//! The RocksDB backend. Data lives in the default column family; the changelog checkpoint lives in a `meta`
//! column family and is written in the same `WriteBatch` as the data it describes, so the two can never disagree,
//! whatever moment a crash picks. Every store of an instance shares one [`StateMemory`] budget.

use super::budget::StateMemory;
use super::{Entries, KeyValueStore, LogBatch, Order, StoreError, WriteBatch};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, DB};
use std::ops::Bound;
use std::path::Path;

const META_CF: &str = "meta";
const CHECKPOINT_KEY: &[u8] = b"changelog-offset";

/// A RocksDB-backed key-value store.
pub struct RocksDbStore {
    name: String,
    db: DB,
}

impl RocksDbStore {
    /// Open (or create) the store in `dir`, its memory counted in `memory`.
    pub fn open(name: impl Into<String>, dir: &Path, memory: &StateMemory) -> Result<Self, StoreError> {
        let name = name.into();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        memory.configure_db(&mut opts);
        // A task has a store per declared store, and an instance many tasks: RocksDB's default 64 MiB write
        // buffers let a busy instance hold gigabytes in memtables. Kafka Streams' defaults bound each store to
        // three buffers of 16 MiB; the metadata family holds one key and needs far less. The shared budget
        // flushes sooner when all stores together reach its share.
        let mut data = Options::default();
        data.set_write_buffer_size(16 << 20);
        data.set_max_write_buffer_number(3);
        memory.configure_family(&mut data);
        let mut meta = Options::default();
        meta.set_write_buffer_size(1 << 20);
        memory.configure_family(&mut meta);
        let cfs = vec![ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, data), ColumnFamilyDescriptor::new(META_CF, meta)];
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|source| StoreError::RocksDb { store: name.clone(), source })?;
        Ok(RocksDbStore { name, db })
    }

    /// Write `wb` with `checkpoint` in the same batch, so the two can never disagree.
    fn write(&self, mut wb: rocksdb::WriteBatch, checkpoint: Option<i64>) -> Result<(), StoreError> {
        if let Some(offset) = checkpoint {
            let meta = self.db.cf_handle(META_CF).ok_or_else(|| StoreError::Unknown(format!("{}/{META_CF}", self.name)))?;
            wb.put_cf(meta, CHECKPOINT_KEY, offset.to_be_bytes());
        }
        self.db.write(wb).map_err(self.err())
    }

    /// Bytes in this store's memtables now, flushing ones included (RocksDB's own count, whatever the budget).
    #[cfg(test)]
    fn memtable_bytes(&self) -> u64 {
        let property = "rocksdb.cur-size-all-mem-tables";
        let data = self.db.property_int_value(property).expect("property").unwrap_or(0);
        let meta = self.db.cf_handle(META_CF).and_then(|cf| self.db.property_int_value_cf(cf, property).expect("property"));
        data + meta.unwrap_or(0)
    }

    fn err(&self) -> impl Fn(rocksdb::Error) -> StoreError + '_ {
        |source| StoreError::RocksDb { store: self.name.clone(), source }
    }
}

/// Puts (`Some`) and deletes (`None`) as one RocksDB batch, in the order given.
fn rocksdb_batch<'a>(writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>) -> rocksdb::WriteBatch {
    let mut wb = rocksdb::WriteBatch::default();
    for (k, v) in writes {
        match v {
            Some(v) => wb.put(k, v),
            None => wb.delete(k),
        }
    }
    wb
}

fn within(key: &[u8], bound: &Bound<Vec<u8>>, upper: bool) -> bool {
    match (bound, upper) {
        (Bound::Unbounded, _) => true,
        (Bound::Included(b), false) => key >= b.as_slice(),
        (Bound::Excluded(b), false) => key > b.as_slice(),
        (Bound::Included(b), true) => key <= b.as_slice(),
        (Bound::Excluded(b), true) => key < b.as_slice(),
    }
}

impl KeyValueStore for RocksDbStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(self.err())
    }

    fn range(&self, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>, order: Order, limit: usize) -> Result<Entries, StoreError> {
        let mode = match (order, &from, &to) {
            (Order::Ascending, Bound::Included(k) | Bound::Excluded(k), _) => IteratorMode::From(k, Direction::Forward),
            (Order::Ascending, Bound::Unbounded, _) => IteratorMode::Start,
            (Order::Descending, _, Bound::Included(k) | Bound::Excluded(k)) => IteratorMode::From(k, Direction::Reverse),
            (Order::Descending, _, Bound::Unbounded) => IteratorMode::End,
        };
        let mut out = Vec::new();
        for item in self.db.iterator(mode) {
            let (k, v) = item.map_err(self.err())?;
            let (in_from, in_to) = (within(&k, &from, false), within(&k, &to, true));
            match order {
                // Seeking lands on the bound itself: skip an excluded bound, stop once past the far end.
                Order::Ascending if !in_from => continue,
                Order::Ascending if !in_to => break,
                Order::Descending if !in_to => continue,
                Order::Descending if !in_from => break,
                _ => {}
            }
            out.push((k.into_vec(), v.into_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn apply(&self, batch: &WriteBatch, checkpoint: Option<i64>) -> Result<(), StoreError> {
        self.write(rocksdb_batch(batch.iter()), checkpoint)
    }

    fn apply_log(&self, records: &LogBatch, checkpoint: Option<i64>) -> Result<(), StoreError> {
        self.write(rocksdb_batch(records.iter()), checkpoint)
    }

    fn checkpoint(&self) -> Result<Option<i64>, StoreError> {
        let meta = self.db.cf_handle(META_CF).ok_or_else(|| StoreError::Unknown(format!("{}/{META_CF}", self.name)))?;
        let raw = self.db.get_cf(meta, CHECKPOINT_KEY).map_err(self.err())?;
        Ok(raw.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()).map(i64::from_be_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::budget::MemoryBudget;
    use crate::state::memory::MemoryStore;
    use std::time::{Duration, Instant};

    fn batch(entries: &[(&str, Option<&str>)]) -> WriteBatch {
        let mut b = WriteBatch::default();
        for (k, v) in entries {
            match v {
                Some(v) => b.put(k.as_bytes().to_vec(), v.as_bytes().to_vec()),
                None => b.delete(k.as_bytes().to_vec()),
            }
        }
        b
    }

    fn keys(v: Entries) -> Vec<String> {
        v.into_iter().map(|(k, _)| String::from_utf8_lossy(&k).into_owned()).collect()
    }

    /// Both backends answer range reads the same way, bounds and order included.
    #[test]
    fn backends_agree_on_ranges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rocks = RocksDbStore::open("s", dir.path(), &StateMemory::new(MemoryBudget::DEFAULT)).expect("open");
        let mem = MemoryStore::new("s");
        let b = batch(&[("a", Some("1")), ("b", Some("2")), ("c", Some("3")), ("d", Some("4"))]);
        for store in [&rocks as &dyn KeyValueStore, &mem] {
            store.apply(&b, None).expect("apply");
            let inc = |s: &str| Bound::Included(s.as_bytes().to_vec());
            let exc = |s: &str| Bound::Excluded(s.as_bytes().to_vec());
            assert_eq!(keys(store.range(inc("b"), exc("d"), Order::Ascending, 10).expect("range")), ["b", "c"]);
            assert_eq!(keys(store.range(exc("a"), inc("c"), Order::Descending, 10).expect("range")), ["c", "b"]);
            assert_eq!(keys(store.range(Bound::Unbounded, Bound::Unbounded, Order::Descending, 3).expect("range")), ["d", "c", "b"]);
            assert_eq!(keys(store.range(exc("b"), Bound::Unbounded, Order::Ascending, 10).expect("range")), ["c", "d"]);
        }
    }

    /// Data and checkpoint are written together and survive reopening.
    #[test]
    fn checkpoint_survives_reopen_with_its_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = RocksDbStore::open("s", dir.path(), &StateMemory::new(MemoryBudget::DEFAULT)).expect("open");
            assert_eq!(s.checkpoint().expect("checkpoint"), None);
            s.apply(&batch(&[("k", Some("v")), ("gone", Some("x"))]), Some(41)).expect("apply");
            s.apply(&batch(&[("gone", None)]), Some(42)).expect("apply");
        }
        let s = RocksDbStore::open("s", dir.path(), &StateMemory::new(MemoryBudget::DEFAULT)).expect("reopen");
        assert_eq!(s.checkpoint().expect("checkpoint"), Some(42));
        assert_eq!(s.get(b"k").expect("get"), Some(b"v".to_vec()));
        assert_eq!(s.get(b"gone").expect("get"), None);
    }

    /// Many stores write four times the budget: without a budget each keeps what it wrote in memory (its own
    /// 16 MiB buffers are not full); under one shared budget their memtables together come down within it (the
    /// share at which flushes start, plus what the arenas keep allocated), the shared cache counts them, and every
    /// write reads back.
    #[test]
    fn stores_sharing_a_budget_keep_their_memtables_within_it_together() {
        const STORES: usize = 4;
        const PER_STORE: usize = 8 << 20;
        let budget = 8 << 20;
        let memtables = |budget: MemoryBudget| {
            let dir = tempfile::tempdir().expect("tempdir");
            let memory = StateMemory::new(budget);
            let stores: Vec<_> =
                (0..STORES).map(|i| RocksDbStore::open(format!("s{i}"), &dir.path().join(i.to_string()), &memory).expect("open")).collect();
            let value = vec![7u8; 1024];
            for n in 0..PER_STORE / value.len() {
                for store in &stores {
                    store.apply(&batch_of(n, &value), Some(n as i64)).expect("apply");
                }
            }
            // RocksDB acts on the budget when a store is written: a write that finds the memtables over their share
            // makes its store flush one of its column families (the one with the oldest memtable, and not one
            // already flushing). So while one store's flush runs, another's memtable can grow past its share, and
            // once the writes stop nothing brings it back (seen here under load: 15 MiB after 30 s of quiet, one
            // run in three). Writes keep coming to a running service; here each store gets one more (its first key
            // again) until the flushes, which run in RocksDB's background threads, brought them within the budget.
            let deadline = Instant::now() + Duration::from_secs(30);
            let total = || stores.iter().map(RocksDbStore::memtable_bytes).sum::<u64>();
            let last = PER_STORE / value.len() - 1;
            while total() > budget_bytes(budget) as u64 && Instant::now() < deadline {
                for store in &stores {
                    store.apply(&batch_of(0, &value), Some(last as i64)).expect("apply");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            for store in &stores {
                for n in [0, PER_STORE / value.len() / 2, PER_STORE / value.len() - 1] {
                    assert_eq!(store.get(&key(n)).expect("get"), Some(value.clone()), "key {n} of {}", store.name());
                }
            }
            (total(), memory.used())
        };
        let (unbounded, _) = memtables(MemoryBudget::Unbounded);
        assert!(unbounded >= (STORES * PER_STORE) as u64, "without a budget the memtables hold everything: {unbounded} bytes");
        let (bounded, used) = memtables(MemoryBudget::Bounded(budget));
        assert!(bounded <= budget as u64, "memtables {bounded} bytes over the budget of {budget}");
        assert!(used >= bounded as usize, "the shared cache counts {used} bytes, the memtables hold {bounded}");
    }

    fn budget_bytes(budget: MemoryBudget) -> usize {
        match budget {
            MemoryBudget::Bounded(b) => b,
            MemoryBudget::Unbounded => usize::MAX,
        }
    }

    fn key(n: usize) -> Vec<u8> {
        format!("key-{n:08}").into_bytes()
    }

    fn batch_of(n: usize, value: &[u8]) -> WriteBatch {
        let mut b = WriteBatch::default();
        b.put(key(n), value.to_vec());
        b
    }
}
