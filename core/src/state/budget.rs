//! One memory budget for every RocksDB store of an instance.
//!
//! An instance opens one RocksDB per store per task, standby replicas included: the fraud detector, with four
//! stores on four partitions, opens sixteen. Left to RocksDB's defaults, each has a block cache of its own and
//! write buffers of its own, so what an instance holds grows with how many tasks it happens to run, not with
//! what it needs, and nobody can say in advance how much memory to give its container.
//!
//! [`StateMemory`] is one LRU block cache that every store of the instance reads through, and one write-buffer
//! manager that charges every store's memtables to that same cache. So the stores' memory together stays within
//! the budget, however many tasks arrive: when the memtables reach their share ([`WRITE_BUFFER_SHARE`]), RocksDB
//! flushes the store being written; when the cache is full, the least recently used blocks go. Index and filter
//! blocks live in the cache too (with high priority, the first level pinned), so they are counted as well.
//! The budget is soft: a write is never refused or stalled, and memtables being flushed count until the flush ends.
//! And it is enforced by writes: the store written flushes one of its column families, but not one already
//! flushing, so while one store flushes another's memtable can grow past the share, and after a burst the
//! memtables can stay above it until the next write (seen in `state::rocksdb`'s test under load: 15 MiB of
//! memtables under an 8 MiB budget, whose share is 4).
//!
//! Kafka Streams users get this only by writing a `RocksDBConfigSetter` by hand (its documentation's
//! `BoundedMemoryRocksDBConfig`); here it is the default, `--state-memory`, and its use is on `/metrics`.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};
use rocksdb::{BlockBasedOptions, Cache, LruCacheOptions, Options, WriteBufferManager};
use std::fmt;
use std::str::FromStr;

/// The memtables' share of the budget, in percent; the rest is for blocks read.
pub const WRITE_BUFFER_SHARE: usize = 50;

/// How much memory an instance's RocksDB stores may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryBudget {
    /// At most this many bytes for all of them: block cache and memtables.
    Bounded(usize),
    /// Each store on RocksDB's own defaults (its own block cache, its own write buffers): `off`.
    Unbounded,
}

impl MemoryBudget {
    /// The default: 128 MiB for the whole instance.
    pub const DEFAULT: MemoryBudget = MemoryBudget::Bounded(128 << 20);
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget::DEFAULT
    }
}

/// Why a `--state-memory` value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The unit after the number is none of those known.
    #[error("unknown unit {unit:?} in {value:?}: use KiB, MiB or GiB, or off")]
    UnknownUnit {
        /// The whole value given.
        value: String,
        /// What followed the number.
        unit: String,
    },
    /// No number, or one too large for this machine's addresses.
    #[error("{0:?} is not a size: a number with KiB, MiB or GiB, or off")]
    NotASize(String),
    /// Less than RocksDB can work in.
    #[error("{0:?} is less than 1 MiB, too little for RocksDB to work in")]
    TooSmall(String),
}

impl FromStr for MemoryBudget {
    type Err = BudgetError;
    /// `off`, or a size: a number of bytes with an optional unit `KiB`, `MiB` or `GiB` (`256MiB`, `1GiB`).
    fn from_str(s: &str) -> Result<Self, BudgetError> {
        if s == "off" {
            return Ok(MemoryBudget::Unbounded);
        }
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits);
        let shift = match unit.trim() {
            "" | "B" => 0,
            "KiB" => 10,
            "MiB" => 20,
            "GiB" => 30,
            other => return Err(BudgetError::UnknownUnit { value: s.to_owned(), unit: other.to_owned() }),
        };
        let bytes =
            number.parse::<usize>().ok().and_then(|n| n.checked_mul(1 << shift)).ok_or_else(|| BudgetError::NotASize(s.to_owned()))?;
        if bytes < 1 << 20 {
            return Err(BudgetError::TooSmall(s.to_owned()));
        }
        Ok(MemoryBudget::Bounded(bytes))
    }
}

impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemoryBudget::Unbounded => f.write_str("off"),
            MemoryBudget::Bounded(b) if b % (1 << 30) == 0 => write!(f, "{}GiB", b >> 30),
            MemoryBudget::Bounded(b) if b % (1 << 20) == 0 => write!(f, "{}MiB", b >> 20),
            MemoryBudget::Bounded(b) => write!(f, "{b}"),
        }
    }
}

/// The block cache and write-buffer manager that all of an instance's RocksDB stores share (cheap to clone).
#[derive(Clone)]
pub struct StateMemory {
    shared: Option<Shared>,
}

#[derive(Clone)]
struct Shared {
    budget: usize,
    cache: Cache,
    write_buffers: WriteBufferManager,
}

impl StateMemory {
    /// The shared cache and manager of `budget` (none when unbounded).
    pub fn new(budget: MemoryBudget) -> Self {
        let shared = match budget {
            MemoryBudget::Unbounded => None,
            MemoryBudget::Bounded(budget) => {
                // RocksDB splits a cache into shards of 512 KiB and more, each its own LRU with its share of the
                // capacity; the write-buffer manager reserves memtable memory in entries of 256 KiB, which would
                // overfill such a shard. Shards of at least 8 MiB keep the whole within the budget.
                let mut opts = LruCacheOptions::default();
                opts.set_capacity(budget);
                opts.set_num_shard_bits((budget >> 23).max(1).ilog2().min(6) as i32);
                let cache = Cache::new_lru_cache_opts(&opts);
                let write_buffers =
                    WriteBufferManager::new_write_buffer_manager_with_cache(budget / 100 * WRITE_BUFFER_SHARE, false, cache.clone());
                Some(Shared { budget, cache, write_buffers })
            }
        };
        StateMemory { shared }
    }

    /// Make a database's options charge its memtables, all its column families' together, to the shared manager.
    pub fn configure_db(&self, opts: &mut Options) {
        if let Some(shared) = &self.shared {
            opts.set_write_buffer_manager(&shared.write_buffers);
        }
    }

    /// Make a column family's options read its blocks, index and filter blocks included, through the shared cache.
    pub fn configure_family(&self, opts: &mut Options) {
        let Some(shared) = &self.shared else { return };
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&shared.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&table);
    }

    /// Bytes the stores hold in the shared cache now, memtables included (0 when unbounded: nothing is shared).
    pub fn used(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.cache.get_usage())
    }

    /// Bytes of memtables now, all stores together (0 when unbounded).
    pub fn write_buffers(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.write_buffers.get_usage())
    }

    /// The budget in bytes, when bounded.
    pub fn budget(&self) -> Option<usize> {
        self.shared.as_ref().map(|s| s.budget)
    }

    /// The gauges `streamcore_state_memory_bytes{part="used"|"write_buffers"|"budget"}`, read at each scrape.
    pub fn collector(&self, application_id: &str) -> Result<Box<dyn Collector>, prometheus::Error> {
        let opts = Opts::new(
            "streamcore_state_memory_bytes",
            "Memory of this instance's RocksDB stores: used (block cache and memtables), of which write_buffers, and the budget",
        )
        .const_label("application_id", application_id);
        Ok(Box::new(Gauges { memory: self.clone(), gauges: IntGaugeVec::new(opts, &["part"])? }))
    }
}

/// The state-memory gauges, refreshed from RocksDB when collected.
struct Gauges {
    memory: StateMemory,
    gauges: IntGaugeVec,
}

impl Collector for Gauges {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauge = |part: &str, bytes: usize| self.gauges.with_label_values(&[part]).set(i64::try_from(bytes).unwrap_or(i64::MAX));
        gauge("used", self.memory.used());
        gauge("write_buffers", self.memory.write_buffers());
        if let Some(budget) = self.memory.budget() {
            gauge("budget", budget);
        }
        self.gauges.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes read as users write them, and say what is wrong with what they cannot read.
    #[test]
    fn budgets_parse_from_sizes_or_off() {
        assert_eq!("256MiB".parse(), Ok(MemoryBudget::Bounded(256 << 20)));
        assert_eq!("1GiB".parse(), Ok(MemoryBudget::Bounded(1 << 30)));
        assert_eq!("2097152".parse(), Ok(MemoryBudget::Bounded(2 << 20)));
        assert_eq!("off".parse(), Ok(MemoryBudget::Unbounded));
        assert_eq!("12MB".parse::<MemoryBudget>(), Err(BudgetError::UnknownUnit { value: "12MB".into(), unit: "MB".into() }));
        assert_eq!("512KiB".parse::<MemoryBudget>(), Err(BudgetError::TooSmall("512KiB".into())));
        assert_eq!("MiB".parse::<MemoryBudget>(), Err(BudgetError::NotASize("MiB".into())));
        assert_eq!("99999999999999999999GiB".parse::<MemoryBudget>(), Err(BudgetError::NotASize("99999999999999999999GiB".into())));
        for b in [MemoryBudget::DEFAULT, MemoryBudget::Bounded(3 << 30), MemoryBudget::Bounded((1 << 20) + 1), MemoryBudget::Unbounded] {
            assert_eq!(b.to_string().parse(), Ok(b), "{b}");
        }
    }
}
