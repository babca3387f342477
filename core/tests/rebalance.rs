//! Cooperative rebalancing against a real Kafka broker (started by `scripts/test`): when a second instance joins,
//! only the tasks that move to it are closed on the first, and a stream-table join stays co-partitioned across the
//! two although the group itself assigns only the lead topic's partitions.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use streamcore::codec::Json;
use streamcore::runtime::{RuntimeStatus, Shutdown};
use streamcore::state::StoreSpec;
use streamcore::testkit::kafka::{bootstrap, create_topic, produce, read_topic, unique, wait_caught_up};
use streamcore::time::EventTime;
use streamcore::{Record, Runtime, StreamsConfig, TopologyBuilder};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    sku: String,
    qty: i64,
    ts: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Price {
    sku: String,
    cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Priced {
    sku: String,
    qty: i64,
    cents: Option<i64>,
}

struct Topics {
    orders: String,
    prices: String,
    priced: String,
    app: String,
}

fn topology(t: &Topics) -> streamcore::Topology {
    let b = TopologyBuilder::new(&t.app);
    // The stream is the first source, so the lead topic the group assigns; the table's partitions follow it.
    let orders = b.source(&t.orders, Json::<Order>::new(), |o: &Order| EventTime::payload(&o.ts));
    let prices = b.table(&t.prices, Json::<Price>::new(), StoreSpec::persistent("prices"));
    let priced = orders.join_table("price", &prices, |r: Record<Order>, p: Option<Price>| Priced {
        sku: r.value.sku,
        qty: r.value.qty,
        cents: p.map(|p| p.cents),
    });
    priced.to("priced-sink", &t.priced, Json::new(), |r: &Record<Priced>| Some(r.value.sku.clone()));
    drop((orders, prices, priced));
    b.build().expect("topology")
}

struct Instance {
    handle: std::thread::JoinHandle<Result<(), streamcore::StreamError>>,
    shutdown: Shutdown,
    status: RuntimeStatus,
    registry: prometheus::Registry,
    _state: tempfile::TempDir,
}

fn start(t: &Topics) -> Instance {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
    let state = tempfile::tempdir().expect("state dir");
    let mut cfg = StreamsConfig::new("pricer", &bootstrap());
    cfg.state_dir = state.path().to_path_buf();
    cfg.commit_interval = Duration::from_millis(200);
    let registry = prometheus::Registry::new();
    let rt = Runtime::new(topology(t), cfg, &registry).expect("runtime");
    let (shutdown, status) = (rt.shutdown_handle(), rt.status());
    Instance { handle: rt.spawn().expect("spawn"), shutdown, status, registry, _state: state }
}

impl Instance {
    fn revoked(&self) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "streamcore_revoked_tasks_total")
            .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()).collect::<Vec<_>>())
            .fold(0.0, |a, b| a + b)
    }

    fn stop(self) {
        self.shutdown.trigger();
        self.handle.join().expect("stream thread panicked").expect("runtime failed");
    }
}

/// Wait (60 s at most) until `done` holds for the instances' task counts; returns the last counts.
fn tasks_when(instances: &[&Instance], done: impl Fn(&[usize]) -> bool) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts: Vec<usize> = instances.iter().map(|i| i.status.tasks()).collect();
        if done(&counts) || Instant::now() > deadline {
            return counts;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn json<T: Serialize>(key: &str, v: &T) -> (Option<String>, Vec<u8>) {
    (Some(key.to_owned()), serde_json::to_vec(v).expect("json"))
}

#[test]
fn a_joining_instance_takes_only_the_tasks_that_move_and_joins_stay_co_partitioned() {
    let bs = bootstrap();
    let t = Topics { orders: unique("orders"), prices: unique("prices"), priced: unique("priced"), app: unique("pricer-app") };
    create_topic(&bs, &t.orders, 4, false);
    create_topic(&bs, &t.prices, 4, true);
    let skus: Vec<String> = (0..16).map(|i| format!("sku-{i}")).collect();
    let prices: Vec<_> = skus.iter().enumerate().map(|(i, s)| json(s, &Price { sku: s.clone(), cents: 100 + i as i64 })).collect();
    produce(&bs, &t.prices, &prices);

    let a = start(&t);
    assert_eq!(tasks_when(&[&a], |n| n == [4]), [4], "a lone instance owns every task");
    assert!(wait_caught_up(&bs, &t.app, &t.prices, Duration::from_secs(60)), "the prices were not read");

    let b = start(&t);
    assert_eq!(tasks_when(&[&a, &b], |n| n == [2, 2]), [2, 2], "two instances share four tasks");
    // Eager rebalancing would have closed all four of A's tasks and opened two of them again.
    assert_eq!((a.revoked(), b.revoked()), (2.0, 0.0), "A closed only the two tasks that moved to B");

    // Every order meets its price, whichever instance owns its partition: the table's partition p went with the
    // stream's partition p, to B through its changelog.
    let ts = DateTime::parse_from_rfc3339("2026-11-25T09:30:00Z").expect("ts");
    let orders: Vec<_> = skus.iter().map(|s| json(s, &Order { sku: s.clone(), qty: 3, ts })).collect();
    produce(&bs, &t.orders, &orders);
    let out = read_topic(&bs, &t.priced, 16, Duration::from_secs(60));
    assert!(wait_caught_up(&bs, &t.app, &t.orders, Duration::from_secs(60)), "the orders were not committed");
    let priced: BTreeMap<String, Option<i64>> = out
        .iter()
        .map(|r| serde_json::from_slice::<Priced>(r.value.as_deref().expect("value")).expect("priced"))
        .map(|p| (p.sku, p.cents))
        .collect();
    let want: BTreeMap<String, Option<i64>> = skus.iter().enumerate().map(|(i, s)| (s.clone(), Some(100 + i as i64))).collect();
    assert_eq!((out.len(), priced), (16, want), "one priced order per sku, each with its price");
    assert!(a.status.tasks() == 2 && b.status.tasks() == 2, "no task moved meanwhile");
    a.stop();
    b.stop();
}
