//! The one-command demo: the suite's four services and their load generators in one process, and a live page.
//!
//! By default everything runs against **librdkafka's in-process mock cluster** (`rdkafka::mocking::MockCluster`):
//! it speaks the Kafka protocol, but keeps data in memory, so nothing survives the process. It is for trying the
//! suite out, never for tests of correctness (those run against a real broker: `scripts/test`).
//! `--bootstrap HOST:PORT` points the same demo at a real broker instead (its topics must exist, as
//! `docker-compose.yml`'s `kafka-init` creates them).
//!
//! | module | what |
//! |---|---|
//! | [`suite`] | the services' configurations, their topologies and topics, waiting for every application |
//! | [`load`] | the generators: transactions, trades, card traffic, simulated homes |
//! | [`page`] | the live page and the forwarding to each service's endpoints |
//! | [`history`] | what the page draws over time, read back from the services' topics |
//!
//! Emails are written as `.eml` files into the outbox directory.

mod history;
mod load;
mod page;
mod suite;

use clap::Parser;
use rdkafka::mocking::MockCluster;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;

// The services' allocator (see their main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Try the suite in one command.
#[derive(Parser)]
#[command(name = "demo", version, about)]
struct Cli {
    /// A real broker to use instead of the in-process mock cluster.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Account transactions for txn-mailer.
    #[arg(long, default_value_t = 5000)]
    count: u64,
    /// Trades for stock-ticker.
    #[arg(long, default_value_t = 20_000)]
    trades: u64,
    /// Card transactions for fraud-detection.
    #[arg(long, default_value_t = 20_000)]
    card_transactions: u64,
    /// Simulated homes (a thermostat and a washer each) for iot-controller.
    #[arg(long, default_value_t = 20)]
    homes: u32,
    /// Simulated minutes the homes run for.
    #[arg(long, default_value_t = 120)]
    device_minutes: u64,
    /// Simulated time per wall-clock time for the homes.
    #[arg(long, default_value_t = 60)]
    speedup: u32,
    /// Records per second per generator (0: as fast as possible).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of malformed records, to see the dead-letter topics at work.
    #[arg(long, default_value_t = 0.01)]
    malformed: f64,
    /// Where emails are written.
    #[arg(long, default_value = "outbox")]
    outbox: PathBuf,
    /// The live page's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    page_http: SocketAddr,
    /// txn-mailer's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    mailer_http: SocketAddr,
    /// stock-ticker's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8082")]
    ticker_http: SocketAddr,
    /// fraud-detection's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8083")]
    fraud_http: SocketAddr,
    /// iot-controller's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8084")]
    iot_http: SocketAddr,
    /// Exit once every generated record has been processed (instead of running until Ctrl-C).
    #[arg(long)]
    exit_when_done: bool,
    /// Print every topic the suite uses (`name partitions input|output|internal [compacted]`) and exit: what a real
    /// broker needs before `--bootstrap` (the services create the internal ones themselves).
    #[arg(long)]
    list_topics: bool,
    /// Print the tutorial's topology chapter (every topology's `describe()` and Mermaid diagram) and exit:
    /// `docs/src/topologies.md` is this output, and CI fails when it is stale.
    #[arg(long)]
    topology_docs: bool,
}

const PARTITIONS: i32 = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error,demo=info".into()))
        .init();
    let cli = Cli::parse();
    let state = std::env::temp_dir().join(format!("streamsuite-demo-{}", std::process::id()));
    std::fs::create_dir_all(&state)?;
    let topologies = suite::topologies(&state)?;
    if cli.topology_docs {
        print!("{}", suite::topology_docs(&topologies));
        std::fs::remove_dir_all(&state)?;
        return Ok(());
    }
    if cli.list_topics {
        for (topic, partitions) in suite::topics(&topologies, PARTITIONS) {
            let compacted = if suite::is_table(&topologies, &topic) { " compacted" } else { "" };
            println!("{topic} {partitions} {}{compacted}", suite::role(&topologies, &topic));
        }
        std::fs::remove_dir_all(&state)?;
        return Ok(());
    }

    // The mock cluster lives as long as this binding: the whole run.
    let mock;
    let (bootstrap, mode) = match &cli.bootstrap {
        Some(b) => {
            println!("demo: using the real broker at {b}");
            (b.clone(), format!("real broker at {b}"))
        }
        None => {
            mock = MockCluster::new(1)?;
            println!("demo: IN-MEMORY MODE: librdkafka's mock cluster, inside this process; all data is lost on exit.");
            println!("      (a real broker: --bootstrap HOST:PORT)");
            // The mock cluster does not implement CreateTopics: create them through its own API.
            for (topic, partitions) in suite::topics(&topologies, PARTITIONS) {
                mock.create_topic(&topic, partitions, 1)?;
            }
            (mock.bootstrap_servers(), "IN-MEMORY MODE (librdkafka's mock cluster, for trying things out)".to_owned())
        }
    };

    let ports = suite::Ports { mailer: cli.mailer_http, ticker: cli.ticker_http, fraud: cli.fraud_http, iot: cli.iot_http };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let services = vec![
        tokio::spawn(txn_mailer::app::run(suite::mailer(&bootstrap, &state, ports.mailer, cli.outbox.clone())?, stopped())),
        tokio::spawn(stock_ticker::app::run(suite::ticker(&bootstrap, &state, ports.ticker), stopped())),
        tokio::spawn(fraud_detection::app::run(suite::fraud(&bootstrap, &state, ports.fraud)?, stopped())),
        tokio::spawn(iot_controller::app::run(suite::iot(&bootstrap, &state, ports.iot)?, stopped())),
    ];
    let history = history::Shared::default();
    let reader = tokio::spawn(history::follow(bootstrap.clone(), history.clone(), stopped()));
    let page = page::routes(ports.all().to_vec(), cli.outbox.clone(), cli.homes, mode, history);
    let listener = tokio::net::TcpListener::bind(cli.page_http).await?;
    let page_server = tokio::spawn(axum::serve(listener, page).with_graceful_shutdown(stopped()).into_future());
    println!("demo: the live page: http://{}/", cli.page_http);
    for (name, addr) in ports.all() {
        println!("demo: {name:<16} http://{addr}  (/metrics, /topology)");
    }
    println!(
        "demo: try  curl -H 'Authorization: Bearer {}' -d '{{\"action\": \"heat_on\"}}' {}/devices/thermostat-0/commands",
        suite::API_TOKEN,
        ports.iot
    );
    println!("demo: emails go to {}/", cli.outbox.display());

    let load = load::Load {
        seed: cli.seed,
        transactions: cli.count,
        trades: cli.trades,
        card_transactions: cli.card_transactions,
        homes: cli.homes,
        device_minutes: cli.device_minutes,
        speedup: cli.speedup,
        rate: (cli.rate > 0).then_some(cli.rate),
        malformed: cli.malformed,
    };
    let generators: Vec<fn(&str, &load::Load) -> load::Sent> = vec![load::transactions, load::trades, load::cards, load::homes];
    let running: Vec<_> = generators
        .into_iter()
        .map(|g| {
            let (bs, load) = (bootstrap.clone(), load.clone());
            tokio::task::spawn_blocking(move || g(&bs, &load))
        })
        .collect();
    println!(
        "demo: generating: {} transactions, {} trades, {} card transactions, {} homes",
        cli.count, cli.trades, cli.card_transactions, cli.homes
    );

    let outbox = cli.outbox.clone();
    let all_processed = async move {
        for r in running {
            println!("demo: sent {}", r.await??);
        }
        let names: Vec<String> = topologies.iter().map(|(_, t)| t.name().to_owned()).collect();
        tokio::task::spawn_blocking(move || suite::wait_processed(&bootstrap, &topologies)).await??;
        let mails = std::fs::read_dir(&outbox)?.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count();
        println!("demo: done: {} transactions processed, {mails} emails in {}", load.transactions, outbox.display());
        println!("demo: every application caught up: {}", names.join(", "));
        anyhow::Ok(())
    };
    if cli.exit_when_done {
        all_processed.await?;
    } else {
        tokio::select! {
            r = all_processed => { r?; println!("demo: Ctrl-C to stop"); tokio::signal::ctrl_c().await?; }
            r = tokio::signal::ctrl_c() => r?,
        }
    }
    let _ = stop_tx.send(true);
    for s in services {
        s.await??;
    }
    page_server.await??;
    reader.await??;
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
