//! Global tables at run time: every instance reads *all* partitions of a global table's topic into an in-memory
//! store before it processes anything (bootstrap), then keeps applying updates as they come. Not changelogged:
//! the topic itself is the table's log, read from the beginning at every start, which is why global tables are
//! for small reference data.

use crate::error::StreamError;
use crate::query::StoreRegistry;
use crate::state::memory::MemoryStore;
use crate::state::{KeyValueStore, WriteBatch};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The partition number global stores are registered under for interactive queries.
pub(crate) const GLOBAL_PARTITION: i32 = -1;

/// The global tables of a runtime and the consumer that keeps them current.
pub(crate) struct GlobalTables {
    consumer: Option<BaseConsumer>,
    stores: BTreeMap<String, Arc<dyn KeyValueStore>>,
    by_topic: BTreeMap<String, Arc<dyn KeyValueStore>>,
}

impl GlobalTables {
    /// Read every global table's topic to its end, and register the stores for queries. `tables` are
    /// `(topic, store)` pairs: the topology's global tables, and the runtime's own (ownership, for routing).
    pub(crate) fn bootstrap(config: &ClientConfig, tables: &[(String, String)], registry: &StoreRegistry) -> Result<Self, StreamError> {
        let mut stores = BTreeMap::new();
        let mut by_topic = BTreeMap::new();
        for (topic, name) in tables {
            let store: Arc<dyn KeyValueStore> = Arc::new(MemoryStore::new(name.clone()));
            registry.register(GLOBAL_PARTITION, store.clone());
            stores.insert(name.clone(), store.clone());
            by_topic.insert(topic.clone(), store);
        }
        if by_topic.is_empty() {
            return Ok(GlobalTables { consumer: None, stores, by_topic });
        }
        let consumer: BaseConsumer = config.create().map_err(StreamError::kafka("creating the global-table consumer"))?;
        let mut tpl = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        // Each partition starts at its low watermark: one whose records all expired (low = high > 0) is read to
        // its end before any record or position says so.
        let mut position: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for topic in by_topic.keys() {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30)).map_err(StreamError::kafka("global-table metadata"))?;
            for t in md.topics() {
                for p in t.partitions() {
                    tpl.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(StreamError::kafka("global-table assignment"))?;
                    // Retried: a topic just created (the owners topic, by the first instance) may have no leader yet.
                    let (low, high) = super::partition_end::watermarks(&consumer, topic, p.id())?;
                    ends.insert((topic.clone(), p.id()), high);
                    position.insert((topic.clone(), p.id()), low);
                }
            }
        }
        consumer.assign(&tpl).map_err(StreamError::kafka("assigning global-table partitions"))?;
        let tables = GlobalTables { consumer: Some(consumer), stores, by_topic };
        let deadline = Instant::now() + Duration::from_secs(300);
        while ends.iter().any(|(k, &end)| position.get(k).copied().unwrap_or(0) < end) {
            if Instant::now() > deadline {
                return Err(StreamError::Config("global tables not read to their end within 5 minutes".into()));
            }
            match tables.poll_one(super::partition_end::POLL)? {
                Some((topic, partition, offset)) => {
                    position.insert((topic, partition), offset + 1);
                }
                None => {
                    if let Some(consumer) = &tables.consumer {
                        for (topic, partition, o) in super::partition_end::positions(consumer)? {
                            let p = position.entry((topic, partition)).or_insert(o);
                            *p = (*p).max(o);
                        }
                    }
                }
            }
        }
        tracing::info!(tables = tables.stores.len(), "global tables bootstrapped");
        Ok(tables)
    }

    /// The stores, by name, for tasks.
    pub(crate) fn stores(&self) -> &BTreeMap<String, Arc<dyn KeyValueStore>> {
        &self.stores
    }

    /// Apply the updates that arrived since the last call (a bounded number, so processing is not starved).
    pub(crate) fn poll(&self) -> Result<(), StreamError> {
        for _ in 0..1000 {
            if self.poll_one(Duration::ZERO)?.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn poll_one(&self, timeout: Duration) -> Result<Option<(String, i32, i64)>, StreamError> {
        let Some(consumer) = &self.consumer else { return Ok(None) };
        match consumer.poll(timeout) {
            None => Ok(None),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "global-table consumer");
                Ok(None)
            }
            Some(Ok(m)) => {
                let Some(store) = self.by_topic.get(m.topic()) else { return Ok(None) };
                if let Some(key) = m.key() {
                    let mut batch = WriteBatch::default();
                    match m.payload() {
                        Some(v) => batch.put(key.to_vec(), v.to_vec()),
                        None => batch.delete(key.to_vec()),
                    }
                    store.apply(&batch, None)?;
                }
                Ok(Some((m.topic().to_owned(), m.partition(), m.offset())))
            }
        }
    }
}
