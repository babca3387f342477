//! The events of the contract: telemetry and the device registry in, commands out.

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A reading, from topic `telemetry` (key: `device_id`). A thermostat sends `temperature_c`, a washer
/// `detergent_pct`; exactly one of them is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The device; the record key.
    pub device_id: String,
    /// Event time.
    pub ts: DateTime<FixedOffset>,
    /// A thermostat's temperature, °C (exact decimals, so averages and band edges compare exactly).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "streamcore::codec::decimal::exact_option")]
    pub temperature_c: Option<Decimal>,
    /// A washer's detergent level, percent.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "streamcore::codec::decimal::exact_option")]
    pub detergent_pct: Option<Decimal>,
}

impl Reading {
    /// Why this reading cannot be used, if it cannot (checked before repartitioning, so without the registry).
    pub fn problem(&self) -> Option<String> {
        if self.device_id.is_empty() {
            return Some("device_id must not be empty".into());
        }
        match (self.temperature_c, self.detergent_pct) {
            (Some(_), Some(_)) => Some("a reading has temperature_c or detergent_pct, not both".into()),
            (None, None) => Some("a reading needs temperature_c or detergent_pct".into()),
            (Some(t), None) if !(Decimal::from(-90)..=Decimal::from(90)).contains(&t) => {
                Some(format!("temperature_c {t} is outside -90..90"))
            }
            (None, Some(p)) if !(Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&p) => Some(format!("detergent_pct {p} is outside 0..100")),
            _ => None,
        }
    }

    /// The kind of device that sends this reading.
    pub fn kind(&self) -> Kind {
        if self.temperature_c.is_some() {
            Kind::Thermostat
        } else {
            Kind::Washer
        }
    }
}

/// A kind of device; each has its own command topic, `device-commands.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Sends `temperature_c`; told `heat_on`, `cool_on`, `idle`.
    Thermostat,
    /// Sends `detergent_pct`; told `reorder_detergent`.
    Washer,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 2] = [Kind::Thermostat, Kind::Washer];

    /// The name used in topics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Thermostat => "thermostat",
            Kind::Washer => "washer",
        }
    }

    /// The actions this kind of device understands.
    pub fn actions(self) -> &'static [Action] {
        match self {
            Kind::Thermostat => &[Action::HeatOn, Action::CoolOn, Action::Idle],
            Kind::Washer => &[Action::ReorderDetergent],
        }
    }
}

/// An entry of the registry, from the compacted topic `devices` (key: `device_id`; a null value removes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// The device; the record key.
    pub device_id: String,
    /// The home it is in.
    pub home_id: String,
    /// What it is.
    pub kind: Kind,
    /// A thermostat's target temperature, °C.
    #[serde(default = "default_target", deserialize_with = "streamcore::codec::decimal::exact")]
    pub target_c: Decimal,
    /// Half the width of the comfortable band around the target, °C.
    #[serde(default = "default_band", deserialize_with = "streamcore::codec::decimal::exact")]
    pub band_c: Decimal,
}

fn default_target() -> Decimal {
    Decimal::new(210, 1)
}

fn default_band() -> Decimal {
    Decimal::ONE
}

/// What a device is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Start heating.
    HeatOn,
    /// Start cooling.
    CoolOn,
    /// Neither heat nor cool.
    Idle,
    /// Order detergent.
    ReorderDetergent,
}

impl Action {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::HeatOn => "heat_on",
            Action::CoolOn => "cool_on",
            Action::Idle => "idle",
            Action::ReorderDetergent => "reorder_detergent",
        }
    }

    /// The action named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Action> {
        [Action::HeatOn, Action::CoolOn, Action::Idle, Action::ReorderDetergent].into_iter().find(|a| a.as_str() == name)
    }
}

/// A command, on topic `device-commands.<kind>` (key: `device_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique. The controller's are derived from what caused them (device, action, event time), so reprocessing
    /// after a crash writes the same id again and a device can drop the duplicate.
    pub command_id: String,
    /// The device; the record key.
    pub device_id: String,
    /// Its home.
    pub home_id: String,
    /// What to do.
    pub action: Action,
    /// Why, for people.
    pub reason: String,
    /// When it was issued (wall clock).
    pub issued_at: DateTime<Utc>,
    /// The event time it answers: the end of the window judged, the reading, or the request.
    pub ts: DateTime<FixedOffset>,
}
