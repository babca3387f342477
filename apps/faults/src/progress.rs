//! Recovery time: how long after a fault every partition of the output has new *committed* records again.
//!
//! A background reader tails the output topic with `read_committed` and notes, per partition, when its latest
//! record arrived. After a fault at `t0`, the run has recovered once every partition that was producing before
//! `t0` has produced after it; partitions of a stopped instance stay silent until another instance (or the
//! restarted one) has taken them over, so this measures the takeover, the restore and the first commit.

use crate::cluster::Cluster;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tail reader.
pub struct Progress {
    arrivals: Arc<Mutex<BTreeMap<i32, Instant>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Tail every partition of `topic` from its end.
    pub fn tail(bootstrap: &str, topic: &str) -> anyhow::Result<Self> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "faults-progress")
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()?;
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let mut tpl = TopicPartitionList::new();
        for p in md.topics().iter().flat_map(|t| t.partitions()) {
            tpl.add_partition_offset(topic, p.id(), Offset::End)?;
        }
        c.assign(&tpl)?;
        let arrivals: Arc<Mutex<BTreeMap<i32, Instant>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (arrivals, stop) = (arrivals.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                        arrivals.lock().unwrap_or_else(|p| p.into_inner()).insert(m.partition(), Instant::now());
                    }
                }
            })
        };
        Ok(Progress { arrivals, stop, reader: Some(reader) })
    }

    /// Wait until every partition that had output before `t0` has output after it; meanwhile restart instances
    /// that exited. The time from `t0`, or an error after `timeout`.
    pub fn recovered_since(&self, t0: Instant, cluster: &mut Cluster, timeout: Duration) -> anyhow::Result<Duration> {
        loop {
            let now = Instant::now();
            let done = {
                let arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
                !arrivals.is_empty() && arrivals.values().all(|&at| at > t0)
            };
            if done {
                return Ok(now - t0);
            }
            anyhow::ensure!(now - t0 < timeout, "no output on some partitions {timeout:?} after the fault");
            cluster.restart_exited();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
