//! The stream-table duality through the test driver: a topic materialized into a table (a tombstone deletes),
//! the table's changes read back as a stream, and a stream joined with the table as it stands.

use serde::{Deserialize, Serialize};
use streamcore::codec::Json;
use streamcore::state::StoreSpec;
use streamcore::table::Change;
use streamcore::testkit::TopologyTestDriver;
use streamcore::time::{EventTime, RecordTimestamp, TimestampKind};
use streamcore::{Record, TopologyBuilder};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Price {
    cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Order {
    item: String,
    qty: u64,
}

fn topology() -> streamcore::Topology {
    let b = TopologyBuilder::new("shop");
    let prices = b.table("prices", Json::<Price>::new(), StoreSpec::in_memory("prices"));
    prices.changes().to("changes-sink", "price-changes", Json::new(), |r: &Record<Change<Price>>| r.key.clone());
    let orders = b.source("orders", Json::<Order>::new(), |_: &Order| EventTime { millis: 0, kind: TimestampKind::Payload });
    let totals = orders.join_table("priced", &prices, |r: Record<Order>, p: Option<Price>| p.map(|p| p.cents * r.value.qty));
    totals.to("totals-sink", "totals", Json::new(), |r: &Record<Option<u64>>| r.key.clone());
    drop((prices, orders, totals));
    b.build().expect("topology")
}

fn price(d: &mut TopologyTestDriver, item: &str, cents: Option<u64>) {
    let bytes = cents.map(|c| serde_json::to_vec(&Price { cents: c }).expect("json"));
    d.pipe_with("prices", 0, Some(item), bytes.as_deref(), RecordTimestamp::CreateTime(1)).expect("pipe");
}

fn order(d: &mut TopologyTestDriver, item: &str, qty: u64) -> Option<u64> {
    d.pipe_json("orders", Some(item), &Order { item: item.into(), qty }).expect("pipe");
    d.read_json::<Option<u64>>("totals").expect("totals").pop().expect("one total")
}

#[test]
fn a_topic_becomes_a_table_and_a_tombstone_deletes_the_key() {
    let mut d = TopologyTestDriver::new(topology());
    price(&mut d, "tea", Some(300));
    price(&mut d, "tea", Some(350));
    price(&mut d, "jam", Some(500));
    let table = d.store("prices", 0).expect("table store");
    assert_eq!(table.get_json::<Price>("tea").expect("get"), Some(Price { cents: 350 }), "the latest value per key");
    price(&mut d, "jam", None);
    assert_eq!(d.store("prices", 0).expect("store").get_json::<Price>("jam").expect("get"), None);
}

#[test]
fn the_tables_changes_are_a_stream_again() {
    let mut d = TopologyTestDriver::new(topology());
    price(&mut d, "tea", Some(300));
    price(&mut d, "tea", Some(350));
    price(&mut d, "tea", None);
    let changes: Vec<Change<Price>> = d.read_json("price-changes").expect("changes");
    assert_eq!(
        changes,
        vec![
            Change { old: None, new: Some(Price { cents: 300 }) },
            Change { old: Some(Price { cents: 300 }), new: Some(Price { cents: 350 }) },
            Change { old: Some(Price { cents: 350 }), new: None },
        ]
    );
}

#[test]
fn a_stream_joins_the_table_as_it_stands_when_each_record_is_processed() {
    let mut d = TopologyTestDriver::new(topology());
    assert_eq!(order(&mut d, "tea", 2), None, "no price yet: the left join says so");
    price(&mut d, "tea", Some(300));
    assert_eq!(order(&mut d, "tea", 2), Some(600));
    price(&mut d, "tea", Some(350));
    assert_eq!(order(&mut d, "tea", 2), Some(700), "an update affects later records");
    price(&mut d, "tea", None);
    assert_eq!(order(&mut d, "tea", 1), None);
    assert!(matches!(
        d.pipe_json("orders", None, &Order { item: "tea".into(), qty: 1 }).expect("pipe"),
        streamcore::task::Outcome::DeadLettered(_)
    ));
}

#[test]
fn a_global_table_is_looked_up_by_any_field_from_every_partition() {
    let b = TopologyBuilder::new("shop");
    let discounts = b.global_table("discounts", Json::<Price>::new(), "discounts");
    let orders = b.source("orders", Json::<Order>::new(), |_: &Order| EventTime { millis: 0, kind: TimestampKind::Payload });
    // Keyed by customer, looked up by item: no co-partitioning needed.
    let off = orders.join_global(
        "discount",
        &discounts,
        |r: &Record<Order>| Some(r.value.item.clone()),
        |_: Record<Order>, d: Option<Price>| d.map_or(0, |d| d.cents),
    );
    off.to("off-sink", "off", Json::new(), |r: &Record<u64>| r.key.clone());
    drop((orders, off));
    let mut d = TopologyTestDriver::new(b.build().expect("topology")).with_partitions(4);
    let discount = serde_json::to_vec(&Price { cents: 25 }).expect("json");
    d.pipe_with("discounts", 0, Some("tea"), Some(&discount), RecordTimestamp::CreateTime(1)).expect("pipe");
    for partition in 0..4 {
        let order = serde_json::to_vec(&Order { item: "tea".into(), qty: 1 }).expect("json");
        d.pipe_with("orders", partition, Some("cust"), Some(&order), RecordTimestamp::CreateTime(1)).expect("pipe");
    }
    assert_eq!(d.read_json::<u64>("off").expect("off"), vec![25, 25, 25, 25], "every task sees the whole table");
    d.pipe_with("discounts", 0, Some("tea"), None, RecordTimestamp::CreateTime(2)).expect("delete");
    d.pipe_json("orders", Some("cust"), &Order { item: "tea".into(), qty: 1 }).expect("pipe");
    assert_eq!(d.read_json::<u64>("off").expect("off"), vec![0]);
}
