//! The topology: a stream-table join, hopping windows, and commands routed by the kind of device.
//!
//! ```text
//! devices -> table [devices] -> changes -> index-homes [home-index, device-state]
//! telemetry -> validate -> by-device (repartition) -> with-device (join [devices]) -> check-device [device-state]
//!     -> branch by kind
//!        thermostats -> avg-5m (hopping windows, on close) [temperature-windows]
//!                    -> thermostat-control [devices, device-state] -> device-commands.thermostat
//!        washers     -> washer-control [device-state]             -> device-commands.washer
//! ```
//!
//! The registry is a table partitioned like the telemetry (both keyed by device), so each task joins the readings
//! of its devices with their registry entries locally. Readings are repartitioned by `device_id` first, so a
//! reading keyed wrongly or not at all still meets its device.
//!
//! - *Unknown devices*: a reading whose device is not in the registry is counted in
//!   `iot_unknown_device_readings_total` and dead-lettered (reason in the `error` header). Since it is judged
//!   after the repartition, its `source.topic` is the repartition topic and its value the reading as parsed.
//! - *Removed devices*: a tombstone removes the device from the table and forgets its state, and the control
//!   processors look the device up again when they decide, so a window that closes after the removal issues
//!   nothing.
//! - *Thermostats* are judged when a 5-minute window (advancing 1 minute) closes, on its complete average:
//!   out-of-order readings within the grace period count in their windows, later ones go to
//!   `iot-controller.late`. Windows close as stream time passes them, or on the wall clock when the input goes
//!   quiet (`--close-when-idle`), so a house whose sensors stop talking still gets its last decision.
//! - Commands are routed by kind: the branch for each kind ends in its own sink, `device-commands.<kind>`,
//!   keyed by device.

use crate::control::{Average, DeviceState, Mean};
use crate::model::{Action, Command, Device, Kind, Reading};
use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use streamcore::codec::Json;
use streamcore::state::StoreSpec;
use streamcore::table::Change;
use streamcore::time::EventTime;
use streamcore::window::aggregate::{EmitMode, Windowed, WindowedAggregation};
use streamcore::window::TimeWindows;
use streamcore::{ProcessError, Processor, ProcessorContext, Record, StreamError, TopicNames, Topology, TopologyBuilder};

/// Input: readings (before `--topic-prefix`).
pub const TELEMETRY_TOPIC: &str = "telemetry";
/// Input: the registry, compacted.
pub const DEVICES_TOPIC: &str = "devices";
/// Output: `device-commands.<kind>`.
pub const COMMANDS_TOPIC_PREFIX: &str = "device-commands.";
/// Repartition by device: `<application-id>-by-device-repartition`.
pub const BY_DEVICE: &str = "by-device";
/// The registry table.
pub const DEVICES_STORE: &str = "devices";
/// `<home_id> NUL <device_id>` -> empty: a home's devices.
pub const HOME_INDEX_STORE: &str = "home-index";
/// Per-device [`DeviceState`].
pub const STATE_STORE: &str = "device-state";
/// The hopping windows of temperature.
pub const WINDOWS_STORE: &str = "temperature-windows";

/// What the topology is built from.
#[derive(Clone)]
pub struct Settings {
    /// The application id.
    pub application_id: String,
    /// How the topics are named (the contract's names when both prefixes are empty).
    pub topics: TopicNames,
    /// Window size (5 minutes).
    pub window: Duration,
    /// Window advance (1 minute).
    pub advance: Duration,
    /// How long after its end a window waits for out-of-order readings.
    pub grace: Duration,
    /// Close due windows on the wall clock after this long without input (`None`: only stream time closes them).
    pub close_when_idle: Option<Duration>,
    /// A washer below this detergent level (percent) gets a reorder.
    pub reorder_below: Decimal,
    /// The zone whose calendar days limit reorders to one per day.
    pub timezone: Tz,
    /// Counts readings from devices not in the registry.
    pub unknown_devices: prometheus::IntCounter,
}

impl Settings {
    /// The contract's defaults, topics unprefixed, counting unknown devices in `unknown_devices`.
    pub fn new(application_id: &str, unknown_devices: prometheus::IntCounter) -> Self {
        Settings {
            application_id: application_id.to_owned(),
            topics: TopicNames::default(),
            window: Duration::from_secs(300),
            advance: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            close_when_idle: Some(Duration::from_secs(60)),
            reorder_below: Decimal::TEN,
            timezone: Tz::UTC,
            unknown_devices,
        }
    }

    /// The command topic of `kind`.
    pub fn commands_topic(&self, kind: Kind) -> String {
        self.topics.output(&format!("{COMMANDS_TOPIC_PREFIX}{}", kind.as_str()))
    }
}

/// A reading from a registered device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    /// The reading.
    pub reading: Reading,
    /// Its registry entry.
    pub device: Device,
}

/// The topology.
pub fn build_topology(s: &Settings) -> Result<Topology, StreamError> {
    let b = TopologyBuilder::new(s.application_id.clone());
    // The stream handles only describe the graph; they are dropped at the end of this block, before `build`.
    {
        let devices = b.table(&s.topics.input(DEVICES_TOPIC), Json::<Device>::new(), StoreSpec::persistent(DEVICES_STORE));
        devices
            .changes()
            .process("index-homes", &[StoreSpec::persistent(HOME_INDEX_STORE), StoreSpec::persistent(STATE_STORE)], || IndexHomes);

        let telemetry = b.source(&s.topics.input(TELEMETRY_TOPIC), Json::<Reading>::new(), |r: &Reading| EventTime::payload(&r.ts));
        let valid = telemetry.try_map_values("validate", |r: Reading| match r.problem() {
            Some(problem) => Err(ProcessError::Invalid(problem)),
            None => Ok(r),
        });
        let by_device = valid.repartition(BY_DEVICE, |r: &Record<Reading>| Some(r.value.device_id.clone()));
        let joined = by_device.join_table("with-device", &devices, |r: Record<Reading>, d: Option<Device>| (r.value, d));
        let counter = s.unknown_devices.clone();
        let registered =
            joined.process("check-device", &[StoreSpec::persistent(STATE_STORE)], move || CheckDevice { unknown: counter.clone() });
        let by_kind = registered.branch(
            "by-kind",
            vec![
                Box::new(|r: &Record<Registered>| r.value.device.kind == Kind::Thermostat),
                Box::new(|r: &Record<Registered>| r.value.device.kind == Kind::Washer),
            ],
        );
        let [thermostats, washers] = <[_; 2]>::try_from(by_kind).map_err(|_| StreamError::Config("by-kind has two branches".into()))?;

        let delta = |d: Duration| chrono::Duration::from_std(d).map_err(|e| StreamError::Config(format!("window duration {d:?}: {e}")));
        let windows = TimeWindows::hopping(delta(s.window)?, delta(s.advance)?).map_err(|e| StreamError::Config(e.to_string()))?;
        let mut aggregation =
            WindowedAggregation::new(windows, StoreSpec::persistent(WINDOWS_STORE)).grace(s.grace).emit(EmitMode::OnClose);
        if let Some(quiet) = s.close_when_idle {
            aggregation = aggregation.close_when_idle(quiet);
        }
        let averages = thermostats.aggregate_windowed("avg-5m", aggregation, |m: Option<Mean>, r: &Record<Registered>, _| {
            m.unwrap_or_default()
                .with(r.value.reading.temperature_c.unwrap_or_default())
                .ok_or_else(|| format!("{} readings of a window overflow their sum", m.map_or(0, |m| m.count)))
        });
        let thermostat_commands =
            averages.process("thermostat-control", &[StoreSpec::persistent(DEVICES_STORE), StoreSpec::persistent(STATE_STORE)], || {
                ThermostatControl
            });
        let (below, tz) = (s.reorder_below, s.timezone);
        let washer_commands = washers.process("washer-control", &[StoreSpec::persistent(STATE_STORE)], move || WasherControl { below, tz });
        let by_device_key = |r: &Record<Command>| Some(r.value.device_id.clone());
        thermostat_commands.to("thermostat-commands", &s.commands_topic(Kind::Thermostat), Json::new(), by_device_key);
        washer_commands.to("washer-commands", &s.commands_topic(Kind::Washer), Json::new(), by_device_key);
    }
    b.build()
}

/// `<home_id> NUL <device_id>`: the home index's key (NUL cannot occur in a JSON-decoded id's prefix match).
pub fn home_key(home_id: &str, device_id: &str) -> Vec<u8> {
    let mut k = home_prefix(home_id);
    k.extend_from_slice(device_id.as_bytes());
    k
}

/// The prefix of every home-index key of `home_id`.
pub fn home_prefix(home_id: &str) -> Vec<u8> {
    let mut k = home_id.as_bytes().to_vec();
    k.push(0);
    k
}

/// Keeps the home index in step with the registry, and forgets a removed device's state, so a device
/// registered again starts afresh.
struct IndexHomes;

impl Processor for IndexHomes {
    type In = Change<Device>;
    type Out = ();

    fn process(&mut self, record: Record<Change<Device>>, ctx: &mut ProcessorContext<'_, '_, ()>) -> Result<(), ProcessError> {
        let Some(device_id) = record.key else { return Ok(()) };
        let index = ctx.store(HOME_INDEX_STORE)?;
        if let Some(old) = &record.value.old {
            index.delete(home_key(&old.home_id, &device_id));
        }
        match &record.value.new {
            Some(new) => index.put(home_key(&new.home_id, &device_id), Vec::new()),
            None => ctx.store(STATE_STORE)?.delete(device_id.into_bytes()),
        }
        Ok(())
    }
}

/// Dead-letters readings of unknown devices and readings that do not fit their device's kind; keeps the
/// latest reading of the others.
struct CheckDevice {
    unknown: prometheus::IntCounter,
}

impl Processor for CheckDevice {
    type In = (Reading, Option<Device>);
    type Out = Registered;

    fn process(&mut self, record: Record<Self::In>, ctx: &mut ProcessorContext<'_, '_, Registered>) -> Result<(), ProcessError> {
        let (reading, device) = record.value;
        let Some(device) = device else {
            self.unknown.inc();
            return Err(ProcessError::Invalid(format!("device {} is not in the registry", reading.device_id)));
        };
        if reading.kind() != device.kind {
            return Err(ProcessError::Invalid(format!(
                "device {} is a {}, and this is a {} reading",
                device.device_id,
                device.kind.as_str(),
                reading.kind().as_str()
            )));
        }
        let store = ctx.store(STATE_STORE)?;
        let mut state: DeviceState = store.get_json(&device.device_id)?.unwrap_or_default();
        state.observe(&reading);
        store.put_json(&device.device_id, &state)?;
        ctx.forward(Record { key: record.key, value: Registered { reading, device }, time: record.time });
        Ok(())
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A command from the controller. Its id names the device, the action and the event time that caused it, so
/// reprocessing after a crash produces the same id.
fn command(device: &Device, action: Action, reason: String, ts: DateTime<FixedOffset>) -> Command {
    Command {
        command_id: format!("{}-{}-{}", device.device_id, action.as_str(), ts.timestamp_millis()),
        device_id: device.device_id.clone(),
        home_id: device.home_id.clone(),
        action,
        reason,
        issued_at: Utc::now(),
        ts,
    }
}

/// Judges each thermostat's closed windows in order and issues a command when its desired mode changes.
struct ThermostatControl;

impl Processor for ThermostatControl {
    type In = Windowed<Mean>;
    type Out = Command;

    fn process(&mut self, record: Record<Windowed<Mean>>, ctx: &mut ProcessorContext<'_, '_, Command>) -> Result<(), ProcessError> {
        let w = record.value;
        let Some(device) = ctx.store(DEVICES_STORE)?.get_json::<Device>(&w.key)? else { return Ok(()) };
        let Some(avg_c) = w.value.value() else { return Ok(()) };
        let state_store = ctx.store(STATE_STORE)?;
        let mut state: DeviceState = state_store.get_json(&w.key)?.unwrap_or_default();
        let average = Average { window_start: utc(w.window.start), window_end: utc(w.window.end), avg_c, readings: w.value.count };
        let changed = state.judge(&device, average);
        let issued = changed.map(|action| {
            let reason = format!(
                "5-minute average {avg_c} °C (target {} ± {}), window {} to {}",
                device.target_c,
                device.band_c,
                utc(w.window.start).format("%H:%M"),
                utc(w.window.end).format("%H:%M")
            );
            command(&device, action, reason, utc(w.window.end).fixed_offset())
        });
        state.last_command = issued.clone().or(state.last_command);
        state_store.put_json(&w.key, &state)?;
        if let Some(c) = issued {
            ctx.forward(Record { key: Some(w.key), value: c, time: record.time });
        }
        Ok(())
    }
}

/// Orders detergent for a washer running low, at most once per calendar day.
struct WasherControl {
    below: Decimal,
    tz: Tz,
}

impl Processor for WasherControl {
    type In = Registered;
    type Out = Command;

    fn process(&mut self, record: Record<Registered>, ctx: &mut ProcessorContext<'_, '_, Command>) -> Result<(), ProcessError> {
        let Registered { reading, device } = record.value;
        let Some(level) = reading.detergent_pct else { return Ok(()) };
        let day = reading.ts.with_timezone(&self.tz).date_naive();
        let store = ctx.store(STATE_STORE)?;
        let mut state: DeviceState = store.get_json(&device.device_id)?.unwrap_or_default();
        if !state.reorder(level, self.below, day) {
            return Ok(());
        }
        let reason = format!("detergent at {level}% (below {}%); first reorder on {day}", self.below);
        let c = command(&device, Action::ReorderDetergent, reason, reading.ts);
        state.last_command = Some(c.clone());
        store.put_json(&device.device_id, &state)?;
        ctx.forward(Record { key: Some(device.device_id.clone()), value: c, time: record.time });
        Ok(())
    }
}
