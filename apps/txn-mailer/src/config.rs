//! Command line and environment, following the contract's conventions for every service.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use streamcore::money::{FxRates, Money};
use streamcore::service::ServiceArgs;

/// `txn-mailer`: transactions at or above a threshold become an email to the sales rep.
#[derive(Debug, Clone, Parser)]
#[command(name = "txn-mailer", version, about)]
pub struct Config {
    /// The options every service has.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// HTTP listen address.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http: SocketAddr,
    /// Alert threshold, `AMOUNT [CURRENCY]`; inclusive.
    #[arg(long, env = "THRESHOLD", default_value = "10000.00 USD")]
    pub threshold: Money,
    /// Conversion rates to USD, `EUR=1.08,GBP=1.27`; a currency without a rate is rejected to the dead-letter topic.
    #[arg(long, env = "FX_RATES", default_value = "")]
    pub fx: FxRates,
    /// Recipient for transactions that name no sales rep.
    #[arg(long, env = "DEFAULT_REP")]
    pub default_rep: Option<String>,
    /// SMTP server URL, e.g. `smtp://localhost:1025`.
    #[arg(long, env = "SMTP_URL", required_unless_present = "outbox")]
    pub smtp_url: Option<String>,
    /// Write emails as `.eml` files into this directory instead of sending them.
    #[arg(long, env = "MAIL_OUTBOX", conflicts_with = "smtp_url")]
    pub outbox: Option<PathBuf>,
    /// Sender address.
    #[arg(long, env = "MAIL_FROM", default_value = "txn-mailer@localhost")]
    pub mail_from: String,
    /// Input topic.
    #[arg(long, env = "INPUT_TOPIC", default_value = "transactions")]
    pub input_topic: String,
    /// Audit topic for sent alerts.
    #[arg(long, env = "ALERTS_TOPIC", default_value = "high-value-alerts")]
    pub alerts_topic: String,
}
