//! The four services as the demo runs them: their configurations (built field by field, not parsed, so the
//! environment — `SMTP_URL`, `TIMEZONE`, ... — cannot leak into the demo), the topologies whose topics the mock
//! cluster needs, and the consumer groups to wait for, in pipeline order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use streamcore::service::ServiceArgs;
use streamcore::{StreamsConfig, Topology};

/// Conversion rates the mailer and the fraud detector use.
pub(crate) const FX: &str = "EUR=1.08,GBP=1.27,JPY=0.0067";
/// The command API's token in the demo (printed, so the user can try it).
pub(crate) const API_TOKEN: &str = "demo-token";

/// Where each service listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) mailer: SocketAddr,
    pub(crate) ticker: SocketAddr,
    pub(crate) fraud: SocketAddr,
    pub(crate) iot: SocketAddr,
}

impl Ports {
    /// `(service, address)`, for the page's proxy and the banner.
    pub(crate) fn all(&self) -> [(&'static str, SocketAddr); 4] {
        [("txn-mailer", self.mailer), ("stock-ticker", self.ticker), ("fraud-detection", self.fraud), ("iot-controller", self.iot)]
    }
}

fn service_args(bootstrap: &str, state: &Path, name: &str) -> ServiceArgs {
    let mut s = ServiceArgs::new(bootstrap);
    s.state_dir = state.join(name);
    s
}

pub(crate) fn mailer(bootstrap: &str, state: &Path, http: SocketAddr, outbox: PathBuf) -> anyhow::Result<txn_mailer::config::Config> {
    Ok(txn_mailer::config::Config {
        service: service_args(bootstrap, state, "txn-mailer"),
        http,
        threshold: "10000.00 USD".parse().map_err(anyhow::Error::msg)?,
        fx: FX.parse().map_err(anyhow::Error::msg)?,
        default_rep: Some("desk@example.com".into()),
        smtp_url: None,
        outbox: Some(outbox),
        mail_from: "txn-mailer@localhost".into(),
        input_topic: "transactions".into(),
        alerts_topic: "high-value-alerts".into(),
    })
}

pub(crate) fn ticker(bootstrap: &str, state: &Path, http: SocketAddr) -> stock_ticker::config::Config {
    let defaults = stock_ticker::topology::Settings::new("stock-ticker");
    stock_ticker::config::Config {
        service: service_args(bootstrap, state, "stock-ticker"),
        http,
        timezone: defaults.timezone,
        grace: defaults.grace,
        window: defaults.window,
        advance: defaults.advance,
        moving_grace: defaults.moving_grace,
        close_when_idle: streamcore::service::DurationOrOff(defaults.close_when_idle),
        topics: Default::default(),
    }
}

pub(crate) fn fraud(bootstrap: &str, state: &Path, http: SocketAddr) -> anyhow::Result<fraud_detection::config::Config> {
    let t = fraud_detection::rules::Thresholds::default();
    Ok(fraud_detection::config::Config {
        service: service_args(bootstrap, state, "fraud-detection"),
        http,
        max_txns: t.max_txns,
        max_speed_kmh: t.max_speed_kmh,
        anomaly_sigmas: t.anomaly_sigmas,
        anomaly_ratio: t.anomaly_ratio,
        anomaly_min_history: t.anomaly_min_history,
        timezone: t.timezone,
        fx: FX.parse().map_err(anyhow::Error::msg)?,
        topics: Default::default(),
    })
}

pub(crate) fn iot(bootstrap: &str, state: &Path, http: SocketAddr) -> anyhow::Result<iot_controller::config::Config> {
    let d = iot_controller::topology::Settings::new("iot-controller", prometheus::IntCounter::new("defaults", "defaults only")?);
    let mut service = service_args(bootstrap, state, "iot-controller");
    // The simulated homes' clock runs --speedup times faster than the wall clock, so their readings are dated
    // ahead of it by design.
    service.max_future = streamcore::service::DurationOrOff(None);
    Ok(iot_controller::config::Config {
        service,
        http,
        api_token: Some(API_TOKEN.into()),
        window: d.window,
        advance: d.advance,
        grace: d.grace,
        close_when_idle: streamcore::service::DurationOrOff(d.close_when_idle),
        reorder_below: d.reorder_below,
        timezone: d.timezone,
        topics: Default::default(),
    })
}

/// Every topology of the suite with its service name (its application id), in the order the demo starts them.
pub(crate) fn topologies(state: &Path) -> anyhow::Result<Vec<(&'static str, Topology)>> {
    let mailer = txn_mailer::topology::Settings {
        application_id: "txn-mailer".into(),
        input_topic: "transactions".into(),
        alerts_topic: "high-value-alerts".into(),
        threshold: "10000 USD".parse().map_err(anyhow::Error::msg)?,
        fx: FX.parse().map_err(anyhow::Error::msg)?,
        default_rep: None,
    };
    let probe = Arc::new(txn_mailer::mailer::Mailer::outbox(&state.join("probe"), "demo@localhost")?);
    let ticker = stock_ticker::topology::Settings::new("stock-ticker");
    let counter = prometheus::IntCounter::new("probe", "topology probe")?;
    let fraud = fraud_detection::topology::Settings {
        application_id: "fraud-detection".into(),
        topics: Default::default(),
        thresholds: Default::default(),
        fx: FX.parse().map_err(anyhow::Error::msg)?,
        without_profile: counter.clone(),
    };
    Ok(vec![
        ("txn-mailer", txn_mailer::topology::build_topology(&mailer, probe)?),
        ("stock-ticker", stock_ticker::topology::topology(&ticker)?),
        ("fraud-detection", fraud_detection::topology::build_topology(&fraud)?),
        ("iot-controller", iot_controller::topology::build_topology(&iot_controller::topology::Settings::new("iot-controller", counter))?),
    ])
}

/// Every topic the suite reads or writes, with its partition count: the sources with `partitions`, and what each
/// runtime would create, from the same list the runtime uses (so the two cannot drift).
pub(crate) fn topics(topologies: &[(&str, Topology)], partitions: i32) -> BTreeMap<String, i32> {
    let mut topics = BTreeMap::new();
    for (service, t) in topologies {
        for spec in streamcore::runtime::topics_to_create(t, &StreamsConfig::new(service, "")) {
            topics.insert(spec.name, spec.partitions.unwrap_or(partitions));
        }
    }
    for (_, t) in topologies {
        for source in t.external_source_topics() {
            topics.entry(source.to_owned()).or_insert(partitions);
        }
    }
    topics
}

/// The tutorial's topology chapter: each topology's text description and Mermaid diagram, as the services serve
/// them on `/topology`.
pub(crate) fn topology_docs(topologies: &[(&str, Topology)]) -> String {
    let mut out = String::from(
        "# The topologies, generated\n\n<!-- Generated by `cargo run -p demo -- --topology-docs > docs/src/topologies.md`; \
         scripts/check-book fails when this file is stale. Do not edit by hand. -->\n\n\
         Every service's processor topology, from the code's own `describe()` and `to_mermaid()` (what `GET /topology` \
         and `GET /topology?format=mermaid` answer). Sources read topics, processors transform and keep state, sinks \
         write topics; a repartition topic cuts a topology into sub-topologies.\n",
    );
    for (service, t) in topologies {
        out.push_str(&format!("\n## {service}\n\n```text\n{}```\n\n```mermaid\n{}```\n", t.describe(), t.to_mermaid()));
    }
    out
}

/// Whether a topic is read as a table (or a global table), so should be compacted.
pub(crate) fn is_table(topologies: &[(&str, Topology)], topic: &str) -> bool {
    topologies.iter().any(|(_, t)| t.table_topics().contains(&topic) || t.global_topics().contains(&topic))
}

/// What a topic is to the suite's users: an `input` they (or a generator) write, an `output` they read, or
/// `internal` (changelogs, repartition topics, dead letters, late records), which the services create themselves.
pub(crate) fn role(topologies: &[(&str, Topology)], topic: &str) -> &'static str {
    let is_input = topologies.iter().any(|(_, t)| t.external_source_topics().contains(&topic) || t.global_topics().contains(&topic));
    let is_output = topologies.iter().any(|(_, t)| t.sink_topics().contains(&topic));
    match (is_input, is_output) {
        (true, _) => "input",
        (false, true) => "output",
        (false, false) => "internal",
    }
}

/// Wait until every application has committed the end of each of its source topics, one after the other, and
/// then the live page's reader of their outputs (`crate::history`).
pub(crate) fn wait_processed(bootstrap: &str, topologies: &[(&str, Topology)]) -> anyhow::Result<()> {
    for (_, t) in topologies {
        for source in t.source_topics() {
            let caught_up = streamcore::testkit::kafka::wait_caught_up(bootstrap, t.name(), source, Duration::from_secs(300));
            anyhow::ensure!(caught_up, "{} did not process all of {source}", t.name());
        }
    }
    for topic in crate::history::TOPICS {
        let caught_up = streamcore::testkit::kafka::wait_caught_up(bootstrap, &crate::history::group_id(), topic, Duration::from_secs(300));
        anyhow::ensure!(caught_up, "the live page did not read all of {topic}");
    }
    Ok(())
}
