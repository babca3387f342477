//! The `txn-mailer` binary: parse the configuration, set up logging, run until SIGTERM or Ctrl-C.

use clap::Parser;
use txn_mailer::config::Config;

// mimalloc serves the Rust side's allocations: malloc and free were the largest item of the stream thread's
// profile, and it cut the stock ticker's CPU per trade by about a sixth (README, "What the profile showed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    streamcore::service::init_tracing(&cfg.service.log_format);
    txn_mailer::app::run(cfg, streamcore::service::shutdown_signal()).await
}
