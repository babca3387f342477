//! The `fraud-detection` binary: parse the configuration, set up logging, run until SIGTERM or Ctrl-C.

use clap::Parser;
use fraud_detection::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    streamcore::service::init_tracing(&cfg.service.log_format);
    fraud_detection::app::run(cfg, streamcore::service::shutdown_signal()).await
}
