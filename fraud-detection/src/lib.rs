//! `fraud-detection`: anomaly rules over card transactions joined with card profiles: the chapter's
//! stream-table join, with per-key state. What the rules catch is measured by `fraud-eval` (`apps/fraud-eval`).
//!
//! | module | concept |
//! |---|---|
//! | [`model`] | the contract's events and the rules' names |
//! | [`rules`] | the rules as pure functions of a card's state (running statistics, recent places, daily spend) |
//! | [`topology`] | profiles as a table, its changes as a stream, the repartitioned join, the detector |
//! | [`http`] | `/alerts`, `/cards/{card_id}` |
//! | [`config`] / [`app`] | the command line, the wiring |

pub mod app;
pub mod config;
pub mod http;
pub mod model;
pub mod rules;
pub mod topology;
