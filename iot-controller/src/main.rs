//! The `iot-controller` binary: parse the configuration, set up logging, run until SIGTERM or Ctrl-C.

use clap::Parser;
use iot_controller::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    streamcore::service::init_tracing(&cfg.service.log_format);
    iot_controller::app::run(cfg, streamcore::service::shutdown_signal()).await
}
