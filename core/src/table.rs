//! Streams and tables are two views of the same thing. A *table* is a stream of updates materialized: the
//! latest value per key, kept in a local store, where a record with a null value (a tombstone, the way a
//! compacted topic deletes) removes the key. Going back, a table's changes are a stream again
//! ([`Table::changes`]): each update as the old and the new value.
//!
//! A stream is *joined* with a table ([`Stream::join_table`](crate::Stream::join_table)) by looking up each
//! stream record's key in the table's store, in the same task. That only works when the stream and the table's
//! topic are *co-partitioned* (same partition count, same partitioner, same key), so that a key's stream records
//! and its table entry land in the same task; the runtime refuses to start when the partition counts differ, and
//! a stream keyed by something else is repartitioned first. The join sees the table as it is when the stream
//! record is processed: an update that arrives later affects later records only.
//!
//! A *global* table ([`GlobalTable`]) is the other way to join: every instance reads all partitions of its topic
//! (small reference data: a merchant blocklist, country codes), so the stream needs no co-partitioning and may
//! look it up by any field, not only its key.

use crate::error::ProcessError;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;
use crate::state::StoreSpec;
use crate::topology::Stream;
use std::marker::PhantomData;
use std::sync::Arc;

/// One update of a table: the value before and after (`None`: absent, or deleted).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change<V> {
    /// The value before the update.
    pub old: Option<V>,
    /// The value after it.
    pub new: Option<V>,
}

/// A table materialized from a topic; see the module docs.
pub struct Table<V> {
    pub(crate) store: StoreSpec,
    pub(crate) changes: Stream<Change<V>>,
}

impl<V: Clone + Send + 'static> Table<V> {
    /// The table's changes as a stream: the other direction of the duality.
    pub fn changes(&self) -> &Stream<Change<V>> {
        &self.changes
    }
}

/// A table read in full by every instance; see the module docs. Values are kept as the topic's bytes and
/// decoded on lookup.
pub struct GlobalTable<V> {
    pub(crate) store: String,
    pub(crate) codec: Arc<dyn crate::codec::Deserializer<V>>,
}

/// A global table's topic and store, for the runtime.
#[derive(Debug, Clone)]
pub(crate) struct GlobalSpec {
    pub(crate) topic: String,
    pub(crate) store: String,
}

/// Picks the key to look up from a stream record.
pub(crate) type KeyFn<V> = Arc<dyn Fn(&Record<V>) -> Option<String> + Send + Sync>;

/// Joins each stream record with the global table's entry under the key `key` picks from it (a left join).
pub(crate) struct GlobalJoin<V, T, W> {
    pub(crate) store: String,
    pub(crate) codec: Arc<dyn crate::codec::Deserializer<T>>,
    pub(crate) key: KeyFn<V>,
    pub(crate) joiner: Arc<dyn Fn(Record<V>, Option<T>) -> W + Send + Sync>,
}

impl<V, T, W> Processor for GlobalJoin<V, T, W>
where
    V: Send + 'static,
    T: Send + 'static,
    W: Clone + Send + 'static,
{
    type In = V;
    type Out = W;

    fn process(&mut self, record: Record<V>, ctx: &mut ProcessorContext<'_, '_, W>) -> Result<(), ProcessError> {
        let entry = match (self.key)(&record) {
            Some(k) => match ctx.global(&self.store)?.get(k.as_bytes())? {
                Some(bytes) => {
                    Some(self.codec.deserialize(&bytes).map_err(|e| ProcessError::Invalid(format!("global table {}: {e}", self.store)))?)
                }
                None => None,
            },
            None => None,
        };
        let (key, time) = (record.key.clone(), record.time);
        let joined = (self.joiner)(record, entry);
        ctx.forward(Record { key, value: joined, time });
        Ok(())
    }
}

/// Upserts each record into the table's store (deletes on a tombstone) and forwards the change.
pub(crate) struct Materialize<V> {
    pub(crate) store: String,
    pub(crate) _v: PhantomData<fn(V)>,
}

impl<V> Processor for Materialize<V>
where
    V: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    type In = Option<V>;
    type Out = Change<V>;

    fn process(&mut self, record: Record<Option<V>>, ctx: &mut ProcessorContext<'_, '_, Change<V>>) -> Result<(), ProcessError> {
        let key = record.key.clone().ok_or_else(|| ProcessError::Invalid(format!("table {} needs keyed records", self.store)))?;
        let store = ctx.store(&self.store)?;
        let old: Option<V> = store.get_json(&key)?;
        match &record.value {
            Some(v) => store.put_json(&key, v)?,
            None => store.delete(key.clone().into_bytes()),
        }
        ctx.forward(Record { key: Some(key), value: Change { old, new: record.value }, time: record.time });
        Ok(())
    }
}

/// Joins each stream record with its key's table entry (a left join: `None` when the table has none).
pub(crate) struct TableJoin<V, T, W> {
    pub(crate) store: String,
    pub(crate) joiner: Arc<dyn Fn(Record<V>, Option<T>) -> W + Send + Sync>,
}

impl<V, T, W> Processor for TableJoin<V, T, W>
where
    V: Send + 'static,
    T: serde::de::DeserializeOwned + Send + 'static,
    W: Clone + Send + 'static,
{
    type In = V;
    type Out = W;

    fn process(&mut self, record: Record<V>, ctx: &mut ProcessorContext<'_, '_, W>) -> Result<(), ProcessError> {
        let key =
            record.key.clone().ok_or_else(|| ProcessError::Invalid(format!("a join with table {} needs a keyed record", self.store)))?;
        let entry: Option<T> = ctx.store(&self.store)?.get_json(&key)?;
        let time = record.time;
        let joined = (self.joiner)(record, entry);
        ctx.forward(Record { key: Some(key), value: joined, time });
        Ok(())
    }
}
