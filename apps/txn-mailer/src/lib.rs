//! `txn-mailer`: transactions of $10,000 or more become an email to the account's sales rep. The chapter's
//! *single-event processing* pattern, plus the state it needs to send each email exactly once in practice.
//!
//! # Layout
//!
//! | module | what |
//! |---|---|
//! | [`model`] | the events: transactions in, alerts out, the stats |
//! | [`mailer`] | the email, over SMTP or into an outbox directory (lettre) |
//! | [`topology`] | the processor graph and the notify processor with its dedupe store |
//! | [`http`] | `/alerts/recent`, `/stats` |
//! | [`config`] | command line and environment |
//! | [`app`] | wiring: runtime, HTTP server, shutdown |

pub mod app;
pub mod config;
pub mod http;
pub mod mailer;
pub mod model;
pub mod topology;
