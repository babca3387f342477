//! The one-command demo: the suite's services and their load generators in one process.
//!
//! By default everything runs against **librdkafka's in-process mock cluster** (`rdkafka::mocking::MockCluster`):
//! it speaks the Kafka protocol, but keeps data in memory, so nothing survives the process. It is for trying the
//! suite out, never for tests of correctness (those run against a real broker: `scripts/test`).
//! `--bootstrap HOST:PORT` points the same demo at a real broker instead.
//!
//! Emails are written as `.eml` files into the outbox directory; the high-value alerts are printed as they appear.

use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::ClientConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Try the suite in one command.
#[derive(Parser)]
#[command(name = "demo", version, about)]
struct Cli {
    /// A real broker to use instead of the in-process mock cluster.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Transactions to generate.
    #[arg(long, default_value_t = 5000)]
    count: u64,
    /// Transactions per second (0: as fast as possible).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of malformed transactions, to see the dead-letter topic at work.
    #[arg(long, default_value_t = 0.01)]
    malformed: f64,
    /// Where emails are written.
    #[arg(long, default_value = "outbox")]
    outbox: PathBuf,
    /// txn-mailer's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    mailer_http: SocketAddr,
    /// Exit once every generated transaction has been processed (instead of running until Ctrl-C).
    #[arg(long)]
    exit_when_done: bool,
}

const FX: &str = "EUR=1.08,GBP=1.27,JPY=0.0067";
const PARTITIONS: i32 = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,demo=info".into()))
        .init();
    let cli = Cli::parse();
    let state = tempfile_dir()?;
    let topology = mailer_topology(&state)?;

    // The mock cluster lives as long as this binding: the whole run.
    let mock;
    let bootstrap = match &cli.bootstrap {
        Some(b) => {
            println!("demo: using the real broker at {b}");
            b.clone()
        }
        None => {
            mock = MockCluster::new(1)?;
            println!("demo: IN-MEMORY MODE: librdkafka's mock cluster, inside this process; all data is lost on exit.");
            println!("      (a real broker: --bootstrap HOST:PORT)");
            create_topics(&mock, &topology)?;
            mock.bootstrap_servers()
        }
    };

    // Built field by field, not parsed, so the environment (SMTP_URL, ...) cannot leak into the demo's mailer.
    let mut service = streamcore::service::ServiceArgs::new(&bootstrap);
    service.state_dir.clone_from(&state);
    let mailer_cfg = txn_mailer::config::Config {
        service,
        http: cli.mailer_http,
        threshold: "10000.00 USD".parse().map_err(anyhow::Error::msg)?,
        fx: FX.parse().map_err(anyhow::Error::msg)?,
        default_rep: Some("desk@example.com".into()),
        smtp_url: None,
        outbox: Some(cli.outbox.clone()),
        mail_from: "txn-mailer@localhost".into(),
        input_topic: "transactions".into(),
        alerts_topic: "high-value-alerts".into(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mailer = tokio::spawn(txn_mailer::app::run(mailer_cfg, async move {
        let _ = stop_rx.await;
    }));
    println!("demo: txn-mailer on http://{0}  (try: curl {0}/stats, {0}/alerts/recent?limit=5, {0}/topology)", cli.mailer_http);
    println!("demo: emails go to {}/", cli.outbox.display());

    let done = Arc::new(AtomicBool::new(false));
    let tail = {
        let (bootstrap, done) = (bootstrap.clone(), done.clone());
        std::thread::spawn(move || tail_alerts(&bootstrap, &done))
    };

    let opts = loadgen::transactions::Options {
        seed: cli.seed,
        count: cli.count,
        malformed_share: cli.malformed,
        high_value_share: 0.02,
        ..Default::default()
    };
    let rate = (cli.rate > 0).then_some(cli.rate);
    let gen_bootstrap = bootstrap.clone();
    let produced = tokio::task::spawn_blocking(move || {
        loadgen::produce::produce(&gen_bootstrap, &[], "transactions", loadgen::transactions::generate(&opts), rate)
    });
    println!("demo: producing {} transactions{}", cli.count, rate.map_or(String::new(), |r| format!(" at {r}/s")));

    if cli.exit_when_done {
        let sent = produced.await??;
        // Every stage: the input, and the repartition topic between validation and notification.
        let sources: Vec<String> = topology.source_topics().iter().map(|t| t.to_string()).collect();
        let caught_up = tokio::task::spawn_blocking(move || {
            sources.iter().all(|t| streamcore::testkit::kafka::wait_caught_up(&bootstrap, "txn-mailer", t, Duration::from_secs(300)))
        })
        .await?;
        anyhow::ensure!(caught_up, "txn-mailer did not process all {sent} transactions");
        let mails =
            std::fs::read_dir(&cli.outbox)?.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count();
        println!("demo: done: {sent} transactions processed, {mails} emails in {}", cli.outbox.display());
    } else {
        tokio::select! {
            r = produced => { let sent = r??; println!("demo: all {sent} transactions produced; Ctrl-C to stop"); tokio::signal::ctrl_c().await?; }
            r = tokio::signal::ctrl_c() => r?,
        }
    }
    done.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(());
    mailer.await??;
    let _ = tail.join();
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}

/// A fresh state directory: the mock cluster's topics are new every run, so local state must be too.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("streamsuite-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The mailer's topology as the demo runs it, to read its topics from (the mock cluster needs them created).
fn mailer_topology(state: &std::path::Path) -> anyhow::Result<streamcore::Topology> {
    let settings = txn_mailer::topology::Settings {
        application_id: "txn-mailer".into(),
        input_topic: "transactions".into(),
        alerts_topic: "high-value-alerts".into(),
        threshold: "10000 USD".parse().map_err(anyhow::Error::msg)?,
        fx: FX.parse().map_err(anyhow::Error::msg)?,
        default_rep: None,
    };
    let probe_outbox = state.join("probe");
    Ok(txn_mailer::topology::build_topology(&settings, Arc::new(txn_mailer::mailer::Mailer::outbox(&probe_outbox, "demo@localhost")?))?)
}

/// The mock cluster does not implement CreateTopics: create every topic the mailer needs through its own API,
/// from the same list the runtime would create, so the two cannot drift.
fn create_topics(
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    topology: &streamcore::Topology,
) -> anyhow::Result<()> {
    let service = streamcore::StreamsConfig::new("txn-mailer", "");
    let mut topics: Vec<String> = topology.external_source_topics().iter().map(|t| t.to_string()).collect();
    topics.extend(streamcore::runtime::topics_to_create(topology, &service).into_iter().map(|t| t.name));
    topics.sort();
    topics.dedup();
    for t in &topics {
        mock.create_topic(t, PARTITIONS, 1)?;
    }
    Ok(())
}

/// Print each high-value alert as it is recorded.
fn tail_alerts(bootstrap: &str, done: &AtomicBool) {
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "demo-tail")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => return eprintln!("demo: cannot tail alerts: {e}"),
    };
    if let Err(e) = consumer.subscribe(&["high-value-alerts"]) {
        return eprintln!("demo: cannot tail alerts: {e}");
    }
    while !done.load(Ordering::SeqCst) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if let Some(v) = m.payload().and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok()) {
                println!(
                    "  mail  {:<22} {:<9} {:>12} {} (= {} USD) -> {}",
                    v["txn_id"].as_str().unwrap_or("?"),
                    v["account_id"].as_str().unwrap_or("?"),
                    v["amount"].as_str().unwrap_or("?"),
                    v["currency"].as_str().unwrap_or("?"),
                    v["amount_usd"].as_str().unwrap_or("?"),
                    v["sales_rep"].as_str().unwrap_or("?")
                );
            }
        }
    }
}
