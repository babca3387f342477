//! `stock-ticker`: daily open/high/low/close per symbol in the exchange's time zone, moving statistics over
//! hopping windows, and the day's top-10 gainers and losers in a second phase.
//!
//! The concepts it shows, each in its module:
//!
//! | module | concept |
//! |---|---|
//! | [`model`] | the contract's events, and aggregates that never pass a price through a float |
//! | [`topology`] | local state partitioned by key, repartitioning, calendar-day and hopping windows with grace |
//! | [`ranking`] | multi-phase processing: a sub-topology with one task, which sees every symbol |
//! | [`http`] | interactive queries over the tasks' local state |
//! | [`config`] / [`app`] | the command line, and wiring one runtime and its HTTP server into a service |

pub mod app;
pub mod config;
pub mod http;
pub mod model;
pub mod ranking;
pub mod topology;
