//! The `stock-ticker` binary: parse the configuration, set up logging, run until SIGTERM or Ctrl-C.

use clap::Parser;
use stock_ticker::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    streamcore::service::init_tracing(&cfg.service.log_format);
    stock_ticker::app::run(cfg, streamcore::service::shutdown_signal()).await
}
