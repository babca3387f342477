//! Homes for `iot-controller`, simulated: each has a thermostat and a washer. The simulator registers them,
//! sends their telemetry, reads the controller's commands and reacts to them, so the closed loop can be watched
//! converging: a cold home gets `heat_on`, warms into its band, gets `idle`; a washer running low gets
//! `reorder_detergent` and is refilled.
//!
//! The physics, per simulated minute: a heating room warms by 0.5 °C and a cooling one cools by 0.5 °C; every
//! room also drifts toward the outdoor temperature by 1% of the difference. A running washer uses 1% of its
//! detergent; a reorder refills it to 100%. Readings carry ±0.1 °C of seeded sensor noise.
//!
//! Simulated time runs `speedup` times faster than the wall clock and starts at the wall clock, so the
//! readings' event times run ahead of real time; the controller decides by event time, so a 5-minute window
//! passes in 5 seconds at `--speedup 60`.

use crate::produce::{Outgoing, ProduceError, Sender};
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use std::time::{Duration, Instant};

/// A record for a device: its id (the key) and the JSON value.
pub type Keyed = (String, Vec<u8>);

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seed: same seed, same homes and noise.
    pub seed: u64,
    /// Homes (one thermostat and one washer each).
    pub homes: u32,
    /// Simulated time between two readings of a device.
    pub step: Duration,
    /// Outdoor temperature, °C.
    pub outdoor_c: f64,
    /// Simulated time when the simulation starts.
    pub start: DateTime<Utc>,
}

impl Default for Options {
    fn default() -> Self {
        Options { seed: 42, homes: 10, step: Duration::from_secs(30), outdoor_c: 8.0, start: Utc::now() }
    }
}

/// What a thermostat is doing, as its last command told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Warming.
    Heating,
    /// Cooling.
    Cooling,
    /// Neither.
    Idle,
}

/// One simulated home.
#[derive(Debug, Clone)]
pub struct Home {
    /// `home-<n>`.
    pub home_id: String,
    /// Its thermostat's id.
    pub thermostat_id: String,
    /// Its washer's id.
    pub washer_id: String,
    /// The room's temperature.
    pub temperature_c: f64,
    /// The thermostat's target (its band is ±1 °C).
    pub target_c: f64,
    /// What the thermostat is doing.
    pub mode: Mode,
    /// The washer's detergent, percent.
    pub detergent_pct: f64,
}

/// A command the simulator received.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Received {
    /// Its id.
    pub command_id: String,
    /// The device.
    pub device_id: String,
    /// `heat_on`, `cool_on`, `idle`, `reorder_detergent`.
    pub action: String,
    /// The event time it answers.
    pub ts: DateTime<chrono::FixedOffset>,
}

/// The simulated homes and simulated time.
pub struct Simulation {
    /// The homes.
    pub homes: Vec<Home>,
    /// Every command received, in order.
    pub received: Vec<Received>,
    /// Reorders received.
    pub reorders: u64,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    step: Duration,
    outdoor_c: f64,
    rng: ChaCha8Rng,
}

impl Simulation {
    /// Homes with seeded starting temperatures (12 to 28 °C), targets (19 to 23 °C) and detergent (5 to 100%).
    pub fn new(opts: &Options) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let homes = (0..opts.homes)
            .map(|i| Home {
                home_id: format!("home-{i}"),
                thermostat_id: format!("thermostat-{i}"),
                washer_id: format!("washer-{i}"),
                temperature_c: rng.random_range(12.0..28.0),
                target_c: f64::from(rng.random_range(19..=23u8)),
                mode: Mode::Idle,
                detergent_pct: rng.random_range(5.0..100.0),
            })
            .collect();
        Simulation {
            homes,
            received: Vec::new(),
            reorders: 0,
            now: opts.start,
            start: opts.start,
            step: opts.step,
            outdoor_c: opts.outdoor_c,
            rng,
        }
    }

    /// Simulated now.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The registry entries, `(device_id, value)`.
    pub fn registry(&self) -> Vec<Keyed> {
        let mut out = Vec::with_capacity(self.homes.len() * 2);
        for h in &self.homes {
            let t = serde_json::json!({"device_id": h.thermostat_id, "home_id": h.home_id, "kind": "thermostat",
                "target_c": format!("{:.1}", h.target_c), "band_c": "1.0"});
            let w = serde_json::json!({"device_id": h.washer_id, "home_id": h.home_id, "kind": "washer"});
            out.push((h.thermostat_id.clone(), t.to_string().into_bytes()));
            out.push((h.washer_id.clone(), w.to_string().into_bytes()));
        }
        out
    }

    /// Advance simulated time by one step and return every device's reading then, `(device_id, value)`.
    pub fn tick(&mut self) -> Vec<Keyed> {
        let minutes = self.step.as_secs_f64() / 60.0;
        self.now += chrono::Duration::from_std(self.step).unwrap_or_default();
        let ts = self.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut out = Vec::with_capacity(self.homes.len() * 2);
        for h in &mut self.homes {
            let power = match h.mode {
                Mode::Heating => 0.5,
                Mode::Cooling => -0.5,
                Mode::Idle => 0.0,
            };
            h.temperature_c += minutes * (power + 0.01 * (self.outdoor_c - h.temperature_c));
            h.detergent_pct = (h.detergent_pct - minutes).max(0.0);
            let sensed = h.temperature_c + self.rng.random_range(-0.1..=0.1);
            let t = serde_json::json!({"device_id": h.thermostat_id, "ts": ts, "temperature_c": format!("{sensed:.2}")});
            let w = serde_json::json!({"device_id": h.washer_id, "ts": ts, "detergent_pct": format!("{:.2}", h.detergent_pct)});
            out.push((h.thermostat_id.clone(), t.to_string().into_bytes()));
            out.push((h.washer_id.clone(), w.to_string().into_bytes()));
        }
        out
    }

    /// React to a command: heating, cooling, idling, or a refill. Returns whether it was for one of these homes.
    pub fn apply(&mut self, c: Received) -> bool {
        let Some(h) = self.homes.iter_mut().find(|h| h.thermostat_id == c.device_id || h.washer_id == c.device_id) else {
            return false;
        };
        match c.action.as_str() {
            "heat_on" => h.mode = Mode::Heating,
            "cool_on" => h.mode = Mode::Cooling,
            "idle" => h.mode = Mode::Idle,
            "reorder_detergent" => {
                h.detergent_pct = 100.0;
                self.reorders += 1;
            }
            _ => return false,
        }
        self.received.push(c);
        true
    }

    /// Homes whose room is within 1 °C of its target.
    pub fn in_band(&self) -> usize {
        self.homes.iter().filter(|h| (h.temperature_c - h.target_c).abs() <= 1.0).count()
    }

    /// One line about the homes: simulated time, modes, homes in their band, reorders.
    pub fn summary(&self) -> String {
        let count = |m| self.homes.iter().filter(|h| h.mode == m).count();
        format!(
            "{} (+{} min): {}/{} homes in band; heating {}, cooling {}, idle {}; {} commands, {} reorders",
            self.now.format("%H:%M"),
            (self.now - self.start).num_minutes(),
            self.in_band(),
            self.homes.len(),
            count(Mode::Heating),
            count(Mode::Cooling),
            count(Mode::Idle),
            self.received.len(),
            self.reorders
        )
    }
}

/// The topics of a closed loop.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Readings go here.
    pub telemetry: String,
    /// Where commands come from (`device-commands.thermostat`, `device-commands.washer`).
    pub commands: Vec<String>,
}

/// Why the loop stopped early.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// Producing failed.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// The command consumer failed.
    #[error("consuming commands: {0}")]
    Consume(#[from] rdkafka::error::KafkaError),
}

/// Write the homes' devices to the registry topic.
pub fn register(bootstrap: &str, properties: &[(String, String)], topic: &str, sim: &Simulation) -> Result<(), ProduceError> {
    let mut sender = Sender::new(bootstrap, properties)?;
    for (key, value) in sim.registry() {
        sender.send(&Outgoing { topic: topic.to_owned(), key: Some(key), value: Some(value), timestamp: None })?;
    }
    sender.flush()
}

/// Tick every `pace` of wall-clock time: send readings, apply the commands that arrived, and ask `go_on` whether
/// to continue. Commands issued for event times before the simulation started (an earlier run's) are ignored.
pub fn closed_loop(
    bootstrap: &str,
    properties: &[(String, String)],
    topics: &Topics,
    sim: &mut Simulation,
    pace: Duration,
    mut go_on: impl FnMut(&Simulation) -> bool,
) -> Result<(), LoopError> {
    let mut sender = Sender::new(bootstrap, properties)?;
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", format!("loadgen-devices-{}-{}", std::process::id(), sim.start.timestamp_millis()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    for (k, v) in properties {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create()?;
    let names: Vec<&str> = topics.commands.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    let start_ms = sim.start.timestamp_millis();
    while go_on(sim) {
        let next = Instant::now() + pace;
        for (key, value) in sim.tick() {
            sender.send(&Outgoing { topic: topics.telemetry.clone(), key: Some(key), value: Some(value), timestamp: None })?;
        }
        sender.flush()?;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            let Some(msg) = consumer.poll(wait) else { break };
            let msg = msg?;
            let command = msg.payload().and_then(|p| serde_json::from_slice::<Received>(p).ok());
            if let Some(c) = command.filter(|c| c.ts.timestamp_millis() >= start_ms) {
                sim.apply(c);
            }
        }
    }
    Ok(())
}

/// Open-loop readings for a benchmark: `count` readings from `homes` homes (two devices each), round by round,
/// with no commands applied. Returns the registry and the readings.
pub fn preload(opts: &Options, count: u64) -> (Vec<Keyed>, impl Iterator<Item = Keyed>) {
    let mut sim = Simulation::new(opts);
    let registry = sim.registry();
    let readings = std::iter::from_fn(move || Some(sim.tick())).flatten().take(usize::try_from(count).unwrap_or(usize::MAX));
    (registry, readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(device: &str, action: &str) -> Received {
        Received { command_id: "c".into(), device_id: device.into(), action: action.into(), ts: DateTime::UNIX_EPOCH.fixed_offset() }
    }

    #[test]
    fn heating_warms_a_room_and_idling_lets_it_drift_outdoors() {
        let mut sim = Simulation::new(&Options { homes: 1, ..Default::default() });
        sim.homes[0].temperature_c = 15.0;
        assert!(sim.apply(command("thermostat-0", "heat_on")));
        for _ in 0..20 {
            sim.tick();
        }
        let warmed = sim.homes[0].temperature_c;
        assert!(warmed > 18.0, "10 minutes of heating: {warmed}");
        sim.apply(command("thermostat-0", "idle"));
        sim.tick();
        assert!(sim.homes[0].temperature_c < warmed);
        assert!(!sim.apply(command("elsewhere", "idle")));
    }

    #[test]
    fn a_reorder_refills_the_washer() {
        let mut sim = Simulation::new(&Options { homes: 1, ..Default::default() });
        sim.homes[0].detergent_pct = 9.0;
        sim.apply(command("washer-0", "reorder_detergent"));
        assert_eq!((sim.homes[0].detergent_pct, sim.reorders), (100.0, 1));
    }

    #[test]
    fn the_same_seed_gives_the_same_readings() {
        let opts = Options { start: DateTime::UNIX_EPOCH, ..Default::default() };
        let (r1, a) = preload(&opts, 50);
        let (r2, b) = preload(&opts, 50);
        assert_eq!(r1, r2);
        assert_eq!(a.collect::<Vec<_>>(), b.collect::<Vec<_>>());
    }
}
