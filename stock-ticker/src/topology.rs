//! The stock ticker as one topology of three sub-topologies, one application (`stock-ticker`), one consumer group;
//! each sub-topology runs as tasks of its own, named as Kafka Streams names them:
//!
//! - **Sub-topology 0** (tasks `0_p`, one per `trades` partition): validate, and repartition by symbol, so unkeyed
//!   and wrongly keyed trades still reach their symbol's state.
//! - **Sub-topology 1** (tasks `1_p`, one per partition of the repartition topic): two windowed aggregations side
//!   by side, calendar days in the exchange's time zone (open/high/low/close/volume, grace `--grace`) and hopping
//!   moving windows (min/max/avg). Daily statistics go to `stock-daily-stats`, into a table for the HTTP endpoints,
//!   and, as the day's change, to the single-partition `stock-daily-changes`.
//! - **Sub-topology 2** (task `2_0`, the one partition of `stock-daily-changes`): ranks every symbol's change per
//!   day ([`crate::ranking`]) into `stock-top10`: the second phase of the chapter's multi-phase top-10.
//!
//! The three share nothing but their topics, so `2_0` may run on another thread or instance than any `1_p`.

use crate::model::{DailyChange, DailyStats, DayAggregate, MovingAggregate, MovingStats, Top10, Trade};
use crate::ranking::{Ranking, CHANGES_STORE, TOP10_STORE};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::time::Duration;
use streamcore::codec::Json;
use streamcore::state::StoreSpec;
use streamcore::time::EventTime;
use streamcore::window::{DailyWindows, TimeWindows, Window, Windowed, WindowedAggregation};
use streamcore::{ProcessError, Processor, ProcessorContext, Record, StreamError, TopicNames, Topology, TopologyBuilder};

/// The input topic (before `--topic-prefix`).
pub const TRADES_TOPIC: &str = "trades";
/// Repartition by symbol: `<application-id>-by-symbol-repartition`.
pub const BY_SYMBOL: &str = "by-symbol";
/// Window store of the days.
pub const DAILY_WINDOWS: &str = "daily-windows";
/// Window store of the moving windows.
pub const MOVING_WINDOWS: &str = "moving-windows";
/// Table of daily statistics, key `<symbol>/<date>`, for the HTTP endpoints.
pub const DAILY_STATS_STORE: &str = "daily-stats";
/// Daily statistics (before `--topic-prefix`).
pub const DAILY_STATS_TOPIC: &str = "stock-daily-stats";
/// Moving statistics.
pub const MOVING_STATS_TOPIC: &str = "stock-moving-stats";
/// The single-partition topic between the daily aggregation and the ranking (sub-topologies 1 and 2).
pub const DAILY_CHANGES_TOPIC: &str = "stock-daily-changes";
/// The top-10 lists.
pub const TOP10_TOPIC: &str = "stock-top10";

/// What the topologies are built from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The application id: consumer group, and prefix of the internal topics.
    pub application_id: String,
    /// How the topics are named (the contract's names when both prefixes are empty).
    pub topics: TopicNames,
    /// The exchange's time zone: where trading days begin and end.
    pub timezone: Tz,
    /// How long after a day ends its trades are still accepted.
    pub grace: Duration,
    /// Moving window size.
    pub window: Duration,
    /// Moving window advance.
    pub advance: Duration,
    /// Grace of the moving windows.
    pub moving_grace: Duration,
    /// Close windows on the wall clock after this long without trades on a partition.
    pub close_when_idle: Option<Duration>,
}

impl Settings {
    /// The contract's defaults, for `application_id`.
    pub fn new(application_id: &str) -> Self {
        Settings {
            application_id: application_id.to_owned(),
            topics: TopicNames::default(),
            timezone: chrono_tz::America::New_York,
            grace: Duration::from_secs(4 * 3600),
            window: Duration::from_secs(300),
            advance: Duration::from_secs(60),
            moving_grace: Duration::from_secs(300),
            close_when_idle: Some(Duration::from_secs(300)),
        }
    }

    fn windows<W: streamcore::window::Windowing>(&self, windows: W, store: &str, grace: Duration) -> WindowedAggregation<W> {
        let spec = WindowedAggregation::new(windows, StoreSpec::persistent(store)).grace(grace);
        match self.close_when_idle {
            Some(quiet) => spec.close_when_idle(quiet),
            None => spec,
        }
    }
}

fn duration(d: Duration) -> Result<chrono::Duration, StreamError> {
    chrono::Duration::from_std(d).map_err(|e| StreamError::Config(format!("window duration {d:?}: {e}")))
}

/// The whole service: trades to daily and moving statistics and daily changes, and the changes to the top-10.
pub fn topology(s: &Settings) -> Result<Topology, StreamError> {
    let b = TopologyBuilder::new(s.application_id.clone());
    statistics(&b, s)?;
    // Added last, so it is numbered 2, after the sub-topologies that feed it.
    ranking(&b, s);
    b.build()
}

/// Sub-topologies 0 and 1: trades to daily and moving statistics, and daily changes for the ranking.
fn statistics(b: &TopologyBuilder, s: &Settings) -> Result<(), StreamError> {
    // ANCHOR: repartition
    let trades = b.source(&s.topics.input(TRADES_TOPIC), Json::<Trade>::new(), |t: &Trade| EventTime::payload(&t.ts));
    let valid = trades.try_map_values("validate", |t: Trade| match t.problem() {
        Some(problem) => Err(ProcessError::Invalid(problem)),
        None => Ok(t),
    });
    let by_symbol = valid.repartition(BY_SYMBOL, |r: &Record<Trade>| Some(r.value.symbol.clone()));
    // ANCHOR_END: repartition

    // ANCHOR: daily
    let days = DailyWindows::new(s.timezone);
    let daily = by_symbol.aggregate_windowed("daily", s.windows(days, DAILY_WINDOWS, s.grace), |prev, r: &Record<Trade>, _: &Window| {
        DayAggregate::add(prev, &r.value, r.time.millis)
    });
    // ANCHOR_END: daily
    let stats = daily.try_map_values("daily-stats", move |w: Windowed<DayAggregate>| {
        let date = days.date_of(w.window.start).ok_or_else(|| ProcessError::Invalid(format!("no date for {}", w.window.start)))?;
        DailyStats::of(&w.key, date, &w.value).map_err(ProcessError::Invalid)
    });
    stats.to("daily-stats-sink", &s.topics.output(DAILY_STATS_TOPIC), Json::new(), |r: &Record<DailyStats>| Some(r.value.symbol.clone()));
    let table = stats.process("daily-stats-table", &[StoreSpec::persistent(DAILY_STATS_STORE)], || MaterializeDaily);
    let changes = stats.map("daily-change", |r: Record<DailyStats>| {
        let ts = DateTime::<Utc>::from_timestamp_millis(r.time.millis).unwrap_or_default();
        let s = r.value;
        let change = DailyChange { symbol: s.symbol, date: s.date, change_pct: s.change_pct, close: s.close, ts };
        Record { key: r.key, value: change, time: r.time }
    });
    changes.to("daily-changes-sink", &s.topics.output(DAILY_CHANGES_TOPIC), Json::new(), |r: &Record<DailyChange>| {
        Some(r.value.symbol.clone())
    });
    b.topic_partitions(&s.topics.output(DAILY_CHANGES_TOPIC), 1);

    // ANCHOR: moving_windows
    let hopping = TimeWindows::hopping(duration(s.window)?, duration(s.advance)?).map_err(|e| StreamError::Config(e.to_string()))?;
    let moving = by_symbol.aggregate_windowed(
        "moving",
        s.windows(hopping, MOVING_WINDOWS, s.moving_grace),
        |prev, r: &Record<Trade>, _: &Window| MovingAggregate::add(prev, &r.value),
    );
    // ANCHOR_END: moving_windows
    let moving_stats = moving.map_values("moving-stats", |w: Windowed<MovingAggregate>| MovingStats::of(&w.key, &w.window, &w.value));
    moving_stats
        .to("moving-stats-sink", &s.topics.output(MOVING_STATS_TOPIC), Json::new(), |r: &Record<MovingStats>| Some(r.value.symbol.clone()));
    drop((trades, valid, by_symbol, daily, stats, table, changes, moving, moving_stats));
    Ok(())
}

/// Sub-topology 2: every symbol's daily change to the day's top-10.
fn ranking(b: &TopologyBuilder, s: &Settings) {
    // ANCHOR: ranking
    let changes = b.source(&s.topics.output(DAILY_CHANGES_TOPIC), Json::<DailyChange>::new(), |c: &DailyChange| EventTime::payload(&c.ts));
    let stores = [StoreSpec::persistent(CHANGES_STORE), StoreSpec::persistent(TOP10_STORE)];
    let (zone, grace_ms) = (DailyWindows::new(s.timezone), i64::try_from(s.grace.as_millis()).unwrap_or(i64::MAX));
    let top = changes.process("rank", &stores, move || Ranking::new(zone, grace_ms));
    b.late_records();
    top.to("top10-sink", &s.topics.output(TOP10_TOPIC), Json::new(), |r: &Record<Top10>| Some(r.value.date.to_string()));
    // ANCHOR_END: ranking
    drop((changes, top));
}

/// The `<symbol>/<date>` key of the daily statistics table.
pub fn daily_key(symbol: &str, date: chrono::NaiveDate) -> String {
    format!("{symbol}/{date}")
}

/// Keeps the latest daily statistics per symbol and day in a table, for the HTTP endpoints: the window store
/// lets a day go when it closes, the table keeps it.
struct MaterializeDaily;

impl Processor for MaterializeDaily {
    type In = DailyStats;
    type Out = ();

    fn process(&mut self, record: Record<DailyStats>, ctx: &mut ProcessorContext<'_, '_, ()>) -> Result<(), ProcessError> {
        let s = record.value;
        ctx.store(DAILY_STATS_STORE)?.put_json(&daily_key(&s.symbol, s.date), &s)?;
        Ok(())
    }
}
