//! The `txn-mailer` binary: parse the configuration, set up logging, run until SIGTERM or Ctrl-C.

use clap::Parser;
use txn_mailer::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    streamcore::service::init_tracing(&cfg.service.log_format);
    txn_mailer::app::run(cfg, streamcore::service::shutdown_signal()).await
}
