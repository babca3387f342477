//! The email: over SMTP (`--smtp-url`), or into an outbox directory as `.eml` files (`--outbox`, what the demo
//! uses). Built with lettre.
//!
//! Errors are sorted by what the caller should do: a transient failure (server down, timeout, 4xx) is retried
//! until it succeeds; a permanent one (5xx, a malformed address) will never succeed and is dead-lettered.
//! Each email's Message-ID is derived from its `txn_id`, so a receiver can collapse the one duplicate a crash in
//! the narrow window after SMTP accepted the mail could cause (see `topology`).

use crate::model::Alert;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::file::FileTransport;
use lettre::{Message, SmtpTransport, Transport};
use std::path::Path;
use std::time::Duration;

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The address cannot be used (bad syntax).
    #[error("invalid address {address:?}: {reason}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// Worth retrying: the server is unreachable, timed out, or answered 4xx.
    #[error("mail server unavailable: {0}")]
    Transient(String),
    /// Never going to work: the server refused with 5xx, or the message cannot be built.
    #[error("mail rejected: {0}")]
    Permanent(String),
    /// The configuration is unusable (bad URL).
    #[error("mail configuration: {0}")]
    Config(String),
}

enum Transport_ {
    Smtp(SmtpTransport),
    Outbox(FileTransport),
}

/// Sends alert emails.
pub struct Mailer {
    transport: Transport_,
    from: Mailbox,
}

/// Whether `address` can be used as a recipient.
pub fn check_address(address: &str) -> Result<(), MailError> {
    mailbox(address).map(|_| ())
}

fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    address.parse().map_err(|e: lettre::address::AddressError| MailError::Address { address: address.to_owned(), reason: e.to_string() })
}

impl Mailer {
    /// Over SMTP, e.g. `smtp://localhost:1025` (lettre's URL syntax; `smtps://` and `?tls=required` for TLS).
    pub fn smtp(url: &str, from: &str) -> Result<Self, MailError> {
        let transport = SmtpTransport::from_url(url)
            .map_err(|e| MailError::Config(format!("{url}: {e}")))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        Ok(Mailer { transport: Transport_::Smtp(transport), from: mailbox(from)? })
    }

    /// Into `dir` as `.eml` files.
    pub fn outbox(dir: &Path, from: &str) -> Result<Self, MailError> {
        std::fs::create_dir_all(dir).map_err(|e| MailError::Config(format!("outbox {}: {e}", dir.display())))?;
        Ok(Mailer { transport: Transport_::Outbox(FileTransport::new(dir)), from: mailbox(from)? })
    }

    /// The email for an alert.
    pub fn message(&self, alert: &Alert) -> Result<Message, MailError> {
        let id: String = alert.txn_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
        let body = format!(
            "A high-value transaction was made on an account you look after.\n\n\
             Transaction: {}\nAccount:     {}\nMerchant:    {}\nAmount:      {} {}\nAmount USD:  {}\nEvent time:  {}\n",
            alert.txn_id,
            alert.account_id,
            alert.merchant,
            alert.amount,
            alert.currency,
            alert.amount_usd,
            alert.ts.to_rfc3339()
        );
        Message::builder()
            .from(self.from.clone())
            .to(mailbox(&alert.sales_rep)?)
            .subject(format!("High-value transaction {}: {} {}", alert.txn_id, alert.amount, alert.currency))
            .message_id(Some(format!("<{id}@txn-mailer>")))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Permanent(e.to_string()))
    }

    /// Send the alert's email.
    pub fn send(&self, alert: &Alert) -> Result<(), MailError> {
        let message = self.message(alert)?;
        match &self.transport {
            Transport_::Smtp(t) => t.send(&message).map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    MailError::Permanent(e.to_string())
                } else {
                    MailError::Transient(e.to_string())
                }
            }),
            Transport_::Outbox(t) => t.send(&message).map(|_| ()).map_err(|e| MailError::Transient(e.to_string())),
        }
    }
}
