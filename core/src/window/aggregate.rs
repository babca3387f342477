//! Windowed aggregation: per key and window, fold records into an aggregate kept in a [window store](super::store),
//! with a *grace period* for records that arrive out of order, and a visible trail for those that arrive too late.
//!
//! - A window accepts records until the aggregation's *observed time* (the stream time of its sub-topology) passes
//!   the window's end plus grace. Then it *closes*: its entry is deleted from the store (retention is exactly
//!   size + grace) and, in [`EmitMode::OnClose`], its final result is forwarded once.
//! - A record all of whose windows have closed is *late*: it changes nothing, and goes to the topic
//!   `<service>.late` with headers saying which operator refused it and why (event time, observed time, grace),
//!   where Kafka Streams drops it and bumps a metric. `streamcore_late_records_total{operator}` counts them. A hopping window's record that is late for its earliest windows but not its latest updates only the
//!   open ones.
//! - [`EmitMode::OnUpdate`] forwards the window's new aggregate after every record (what a dashboard wants);
//!   [`EmitMode::OnClose`] forwards only final results (what an invoice wants).
//! - Stream time only moves when records arrive, so a key whose input goes quiet would never see its last window
//!   close. With [`WindowedAggregation::close_when_idle`], once the partition has been quiet for that long on the
//!   wall clock, observed time advances with the wall clock from where the last record left it, and due windows
//!   close. A record that then arrives for such a window is late, as it would have been had time kept flowing.
//! - The observed time is saved in the store whenever windows close, so after a restart a closed window stays
//!   closed instead of being re-opened by a straggler.
//! - The open windows' aggregates are also kept decoded in memory, read from the store once when the task starts:
//!   every record updates several windows, and decoding each one's JSON from the store again for every record
//!   was the largest single cost of a windowed aggregation. The store stays the truth (every update is still
//!   written to it, and logged); the copy in memory is what this processor wrote there. When a record is rolled
//!   back, the task creates its processors again, so the copy never outlives a write that was taken back.

use super::store::{is_window_key, window_key, OBSERVED_TIME_KEY};
use super::{DailyWindows, TimeWindows, Window};
use crate::error::ProcessError;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;
use crate::state::{Order, StoreError, StoreSpec};
use crate::time::{EventTime, TimestampKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

/// The header of a late record naming the windowed operator that refused it.
pub(crate) const LATE_OPERATOR_HEADER: &str = "late.operator";

/// Assigns an event time to its windows.
pub trait Windowing: Send + Sync + 'static {
    /// Every window containing `ts`, earliest first.
    fn windows_for(&self, ts: i64) -> Vec<Window>;
}

impl Windowing for TimeWindows {
    fn windows_for(&self, ts: i64) -> Vec<Window> {
        TimeWindows::windows_for(self, ts).collect()
    }
}

impl Windowing for DailyWindows {
    fn windows_for(&self, ts: i64) -> Vec<Window> {
        self.window_for(ts).map(|(_, w)| w).into_iter().collect()
    }
}

/// When a windowed aggregation forwards results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    /// After every record that changed a window: the latest value, `closed: false`.
    OnUpdate,
    /// Once per window, when it closes: the final value, `closed: true`.
    OnClose,
}

/// How to aggregate over windows: which windows, how long they wait for stragglers, when they emit, and where
/// their state lives.
#[derive(Clone)]
pub struct WindowedAggregation<W> {
    /// Window assignment.
    pub windows: W,
    /// How long after its end a window still accepts records (in event time).
    pub grace_ms: i64,
    /// When results are forwarded.
    pub emit: EmitMode,
    /// Close due windows on the wall clock once the partition has been quiet this long (milliseconds).
    pub close_when_idle_ms: Option<i64>,
    /// The window store.
    pub store: StoreSpec,
}

impl<W: Windowing> WindowedAggregation<W> {
    /// Windows `windows` kept in `store`: no grace, emit on update, close by stream time only.
    pub fn new(windows: W, store: StoreSpec) -> Self {
        WindowedAggregation { windows, grace_ms: 0, emit: EmitMode::OnUpdate, close_when_idle_ms: None, store }
    }
    /// Accept records up to `grace` after a window's end.
    pub fn grace(mut self, grace: std::time::Duration) -> Self {
        self.grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        self
    }
    /// When to forward results.
    pub fn emit(mut self, emit: EmitMode) -> Self {
        self.emit = emit;
        self
    }
    /// Close due windows on the wall clock after `quiet` without records.
    pub fn close_when_idle(mut self, quiet: std::time::Duration) -> Self {
        self.close_when_idle_ms = Some(i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX));
        self
    }
}

/// One window's aggregate, as stored and as forwarded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Windowed<A> {
    /// The record key.
    pub key: String,
    /// The window.
    pub window: Window,
    /// The aggregate so far (or final, when `closed`).
    pub value: A,
    /// Whether the window has closed and this is its final value.
    pub closed: bool,
}

/// Folds a window's previous aggregate (`None` for a new window) and a record into the new aggregate, or says why
/// the record cannot be folded in (an overflow): then the record is dead-lettered and no window changes.
pub(crate) type Aggregator<V, A> = dyn Fn(Option<A>, &Record<V>, &Window) -> Result<A, String> + Send + Sync;

/// The processor behind [`Stream::aggregate_windowed`](crate::Stream::aggregate_windowed).
pub(crate) struct WindowedAggregator<V, A, W> {
    name: String,
    spec: Arc<WindowedAggregation<W>>,
    add: Arc<Aggregator<V, A>>,
    /// Open windows by the time they close: (end + grace, key, start).
    open: BTreeSet<(i64, String, i64)>,
    /// Every open window's aggregate as the store holds it, per key and window start.
    current: HashMap<String, BTreeMap<i64, (Window, A)>>,
    /// The highest time this aggregation has seen or been advanced to.
    observed: Option<i64>,
    /// When the last record arrived on the wall clock, and the observed time then: the base of idle closing.
    last_record: Option<(i64, i64)>,
    _v: PhantomData<fn(V)>,
}

impl<V, A, W> WindowedAggregator<V, A, W> {
    pub(crate) fn new(name: String, spec: Arc<WindowedAggregation<W>>, add: Arc<Aggregator<V, A>>) -> Self {
        WindowedAggregator {
            name,
            spec,
            add,
            open: BTreeSet::new(),
            current: HashMap::new(),
            observed: None,
            last_record: None,
            _v: PhantomData,
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(store: &str, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Codec {
        store: store.to_owned(),
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(store: &str, key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Codec {
        store: store.to_owned(),
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl<V, A, W> WindowedAggregator<V, A, W>
where
    V: serde::Serialize + Send + 'static,
    A: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    W: Windowing,
{
    /// Move observed time to `t` (never back) and close every window that is then due.
    fn advance(&mut self, t: i64, ctx: &mut ProcessorContext<'_, '_, Windowed<A>>) -> Result<(), ProcessError> {
        if self.observed.is_some_and(|o| o >= t) {
            return Ok(());
        }
        self.observed = Some(t);
        let store_name = self.spec.store.name.clone();
        let mut closed_any = false;
        while let Some(first) = self.open.first().filter(|(due, _, _)| *due <= t).cloned() {
            self.open.remove(&first);
            let (_, key, start) = first;
            let Some((window, value)) = self.take_current(&key, start) else { continue };
            ctx.store(&store_name)?.delete(window_key(&key, start));
            closed_any = true;
            if self.spec.emit == EmitMode::OnClose {
                let time = EventTime { millis: window.end - 1, kind: TimestampKind::Payload };
                ctx.forward(Record { key: Some(key.clone()), value: Windowed { key, window, value, closed: true }, time });
            }
        }
        if closed_any {
            let bytes = encode(&store_name, OBSERVED_TIME_KEY, &t)?;
            ctx.store(&store_name)?.put(OBSERVED_TIME_KEY.to_vec(), bytes);
        }
        Ok(())
    }

    /// Remove `key`'s window starting at `start` from the aggregates in memory, returning it if it was open.
    fn take_current(&mut self, key: &str, start: i64) -> Option<(Window, A)> {
        let windows = self.current.get_mut(key)?;
        let taken = windows.remove(&start);
        if windows.is_empty() {
            self.current.remove(key);
        }
        taken
    }

    /// Keep `value` as `key`'s aggregate of `window`.
    fn set_current(&mut self, key: &str, window: Window, value: A) {
        match self.current.get_mut(key) {
            Some(windows) => {
                windows.insert(window.start, (window, value));
            }
            None => {
                self.current.insert(key.to_owned(), BTreeMap::from([(window.start, (window, value))]));
            }
        }
    }
}

impl<V, A, W> Processor for WindowedAggregator<V, A, W>
where
    V: serde::Serialize + Send + 'static,
    A: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    W: Windowing,
{
    type In = V;
    type Out = Windowed<A>;

    /// Rebuild the index of open windows and the observed time from the (restored) store.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, '_, Windowed<A>>) -> Result<(), ProcessError> {
        let store_name = self.spec.store.name.clone();
        let store = ctx.store(&store_name)?;
        let mut latest_start = None;
        for (k, v) in store.range(Bound::Unbounded, Bound::Unbounded, Order::Ascending, usize::MAX)? {
            if k == OBSERVED_TIME_KEY {
                self.observed = Some(decode(&store_name, &k, &v)?);
            } else if is_window_key(&k) {
                let w: Windowed<A> = decode(&store_name, &k, &v)?;
                latest_start = latest_start.max(Some(w.window.start));
                self.open.insert((w.window.end.saturating_add(self.spec.grace_ms), w.key.clone(), w.window.start));
                self.set_current(&w.key, w.window, w.value);
            }
        }
        if let Some(base) = self.observed.max(latest_start) {
            self.last_record = Some((ctx.wall_clock(), base));
        }
        Ok(())
    }

    fn process(&mut self, record: Record<V>, ctx: &mut ProcessorContext<'_, '_, Windowed<A>>) -> Result<(), ProcessError> {
        let key = record
            .key
            .clone()
            .ok_or_else(|| ProcessError::Invalid(format!("{} aggregates by key, and this record has none", self.name)))?;
        let now = ctx.stream_time().unwrap_or(record.time.millis).max(record.time.millis);
        self.advance(now, ctx)?;
        let observed = self.observed.unwrap_or(now);
        self.last_record = Some((ctx.wall_clock(), observed));

        let grace = self.spec.grace_ms;
        let windows: Vec<Window> =
            self.spec.windows.windows_for(record.time.millis).into_iter().filter(|w| w.end.saturating_add(grace) > observed).collect();
        if windows.is_empty() {
            let reason = format!("every window of this record closed before it arrived (grace {} ms)", self.spec.grace_ms);
            return ctx.send_late(&record, &self.name, reason, observed);
        }
        let store_name = self.spec.store.name.clone();
        // Every window's new aggregate first, so a record one of them refuses changes none of them.
        let mut updates = Vec::with_capacity(windows.len());
        let current = self.current.get(key.as_str());
        for window in windows {
            let previous = current.and_then(|w| w.get(&window.start)).map(|(_, a)| a.clone());
            let is_new = previous.is_none();
            let value = (self.add)(previous, &record, &window).map_err(ProcessError::Invalid)?;
            updates.push((is_new, Windowed { key: key.clone(), window, value, closed: false }));
        }
        for (is_new, updated) in updates {
            let window = updated.window;
            let k = window_key(&key, window.start);
            let bytes = encode(&store_name, &k, &updated)?;
            ctx.store(&store_name)?.put(k, bytes);
            self.set_current(&key, window, updated.value.clone());
            if is_new {
                self.open.insert((window.end.saturating_add(grace), key.clone(), window.start));
            }
            if self.spec.emit == EmitMode::OnUpdate {
                ctx.forward(Record { key: Some(key.clone()), value: updated, time: record.time });
            }
        }
        Ok(())
    }

    fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, '_, Windowed<A>>) -> Result<(), ProcessError> {
        let (Some(quiet_for), Some((wall, base))) = (self.spec.close_when_idle_ms, self.last_record) else { return Ok(()) };
        let quiet = ctx.wall_clock() - wall;
        if quiet >= quiet_for {
            self.advance(base.saturating_add(quiet), ctx)?;
        }
        Ok(())
    }
}
