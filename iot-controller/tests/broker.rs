//! Against the real broker `scripts/test` started: the closed loop with the simulator (a cold home is heated
//! into its band and then idled; a washer running low is reordered once), the command API's checks, and two
//! instances sharing the partitions, one taking over the other's tasks and state when it dies.

use loadgen::devices::{self, Options, Simulation, Topics};
use serde_json::{json, Value};
use std::time::Duration;
use streamcore::testkit::kafka::{bootstrap, create_topic, produce, read_topic, unique};
use streamcore::testkit::process::{free_port, ServiceProcess};

struct Deployment {
    bs: String,
    prefix: String,
    app: String,
    state: tempfile::TempDir,
}

impl Deployment {
    fn new(name: &str) -> Self {
        let bs = bootstrap();
        let prefix = format!("{}.", unique(name));
        create_topic(&bs, &format!("{prefix}telemetry"), 4, false);
        create_topic(&bs, &format!("{prefix}devices"), 4, true);
        Deployment { bs, prefix, app: unique(name), state: tempfile::tempdir().expect("state dir") }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn start(&self, extra: &[&str]) -> ServiceProcess {
        self.start_in(self.state.path(), extra)
    }

    /// Another instance of the same application, with its own state directory.
    fn start_in(&self, state: &std::path::Path, extra: &[&str]) -> ServiceProcess {
        self.start_on(free_port(), state, extra)
    }

    fn start_on(&self, port: u16, state: &std::path::Path, extra: &[&str]) -> ServiceProcess {
        let state = state.display().to_string();
        let mut args = vec![
            "--bootstrap",
            &self.bs,
            "--application-id",
            &self.app,
            "--topic-prefix",
            &self.prefix,
            "--state-dir",
            &state,
            "--commit-interval-ms",
            "200",
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        ServiceProcess::start_on(port, env!("CARGO_BIN_EXE_iot-controller"), &args)
    }
}

#[test]
fn a_cold_home_is_heated_into_its_band_and_a_low_washer_is_reordered_once() {
    let d = Deployment::new("iot-loop");
    let service = d.start(&[]);
    let mut sim = Simulation::new(&Options { homes: 1, seed: 7, ..Default::default() });
    let home = &mut sim.homes[0];
    (home.temperature_c, home.target_c, home.detergent_pct) = (16.0, 21.0, 13.0);
    devices::register(&d.bs, &[], &d.topic("devices"), &sim).expect("register");
    for id in ["thermostat-0", "washer-0"] {
        service.wait_for(&format!("/devices/{id}"), |status, _| status == 200);
    }

    let topics = Topics {
        telemetry: d.topic("telemetry"),
        commands: vec![d.topic("device-commands.thermostat"), d.topic("device-commands.washer")],
    };
    let thermostat_actions =
        |sim: &Simulation| sim.received.iter().filter(|c| c.device_id == "thermostat-0").map(|c| c.action.clone()).collect::<Vec<_>>();
    let start = sim.now();
    // One simulated minute per 0.5 s: the simulator's clock, not a wait for the service.
    devices::closed_loop(&d.bs, &[], &topics, &mut sim, Duration::from_millis(250), |sim| {
        let done = thermostat_actions(sim).len() >= 2 && sim.reorders >= 1 && (sim.now() - start).num_minutes() >= 45;
        !done && (sim.now() - start).num_minutes() < 120
    })
    .expect("closed loop");

    let actions = thermostat_actions(&sim);
    assert_eq!(actions.get(..2), Some(&["heat_on".to_owned(), "idle".to_owned()][..]), "{actions:?}\n{}", sim.summary());
    assert!(!actions.contains(&"cool_on".to_owned()), "{actions:?}");
    let home = &sim.homes[0];
    assert!((home.temperature_c - 21.0).abs() <= 1.0 || actions.len() > 2, "{}", sim.summary());
    let reorders: Vec<_> = sim.received.iter().filter(|c| c.device_id == "washer-0").collect();
    assert_eq!(reorders.len(), 1, "{reorders:?}");
    assert_eq!(reorders[0].action, "reorder_detergent");

    let (_, view) = service.wait_for("/devices/thermostat-0", |_, v| v["last_command"]["action"] == actions[actions.len() - 1]);
    assert_eq!(view["device"]["kind"], "thermostat");
    assert!(view["average_5m"]["readings"].as_u64().is_some_and(|n| n >= 9), "{view}");
    let (_, washer) = service.wait_for("/devices/washer-0", |_, v| v["last_command"]["action"] == "reorder_detergent");
    assert_eq!(washer["last_command"]["command_id"], reorders[0].command_id);
    let home_view = service.json("/homes/home-0/devices");
    let ids: Vec<&str> =
        home_view["devices"].as_array().map(|a| a.iter().filter_map(|d| d["device_id"].as_str()).collect()).unwrap_or_default();
    assert_eq!(ids, ["thermostat-0", "washer-0"]);
    assert_eq!(service.metric("iot_unknown_device_readings_total"), 0.0);
    assert_eq!(service.terminate().code(), Some(0));
}

fn post(service: &ServiceProcess, device: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> =
        auth.iter().map(|a| ("Authorization", a.as_str())).chain([("Content-Type", "application/json")]).collect();
    let (status, body) = service.request("POST", &format!("/devices/{device}/commands"), &headers, body);
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, v)
}

#[test]
fn the_command_api_checks_the_token_the_body_the_device_and_its_kind() {
    let d = Deployment::new("iot-api");
    let register = |id: &str, kind: &str| {
        let v = json!({"device_id": id, "home_id": "h-1", "kind": kind, "target_c": "21.0", "band_c": "1.0"});
        (Some(id.to_owned()), v.to_string().into_bytes())
    };
    produce(&d.bs, &d.topic("devices"), &[register("t-1", "thermostat"), register("w-1", "washer")]);
    let heat = r#"{"action": "heat_on", "reason": "guests coming"}"#;

    // No token configured: the endpoint is off.
    let service = d.start(&[]);
    service.wait_for("/devices/t-1", |status, _| status == 200);
    let (status, body) = post(&service, "t-1", Some("anything"), heat);
    assert_eq!(status, 403, "{body}");
    assert_eq!(service.terminate().code(), Some(0));

    let token = "s3cret-token";
    let service = d.start(&["--api-token", token]);
    service.wait_for("/devices/w-1", |status, _| status == 200);
    let cases: [(&str, Option<&str>, &str, u16, &str); 9] = [
        ("no token", None, heat, 401, "bearer token"),
        ("wrong token", Some("s3cret-tokem"), heat, 401, "bearer token"),
        ("a prefix of the token", Some("s3cret"), heat, 401, "bearer token"),
        ("not JSON", Some(token), "{", 400, "body must be"),
        ("no action", Some(token), r#"{"reason": "x"}"#, 400, "missing field `action`"),
        ("unknown field", Some(token), r#"{"action": "idle", "urgency": 3}"#, 400, "unknown field"),
        ("unknown action", Some(token), r#"{"action": "explode"}"#, 400, "unknown action"),
        ("wrong kind", Some(token), r#"{"action": "reorder_detergent"}"#, 400, "a thermostat does not take reorder_detergent"),
        ("unknown device", Some(token), heat, 404, "no device"),
    ];
    for (what, tok, body, want, says) in cases {
        let device = if what == "unknown device" { "t-404" } else { "t-1" };
        let (status, v) = post(&service, device, tok, body);
        assert_eq!(status, want, "{what}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(says)), "{what}: {v}");
    }
    let (_, basic) = service.request("POST", "/devices/t-1/commands", &[("Authorization", &format!("Basic {token}"))], heat);
    assert!(basic.contains("bearer token"), "another scheme is refused: {basic}");
    // A reason of 1 MB: refused as too large (it used to reach the producer and come back as a 503).
    let huge = format!(r#"{{"action": "heat_on", "reason": "{}"}}"#, "x".repeat(1 << 20));
    let (status, v) = post(&service, "t-1", Some(token), &huge);
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("over 65536 bytes")), "{v}");

    let (status, accepted) = post(&service, "t-1", Some(token), heat);
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["command_id"].as_str().expect("command_id").to_owned();
    // 202 means the broker has it: it is on the thermostats' topic, keyed by device, where the answer says.
    let on_topic = read_topic(&d.bs, &d.topic("device-commands.thermostat"), 1, Duration::from_secs(30));
    assert_eq!(on_topic.len(), 1);
    let c = &on_topic[0];
    assert_eq!(
        (c.key.as_deref(), c.partition, c.offset),
        (Some("t-1"), accepted["partition"].as_i64().unwrap_or(-1) as i32, accepted["offset"].as_i64().unwrap_or(-1))
    );
    let command = c.json();
    assert_eq!((command["command_id"].as_str(), command["action"].as_str()), (Some(id.as_str()), Some("heat_on")));
    assert_eq!((command["home_id"].as_str(), command["reason"].as_str()), (Some("h-1"), Some("guests coming")));
    let (status, washer) = post(&service, "w-1", Some(token), r#"{"action": "reorder_detergent"}"#);
    assert_eq!(status, 202, "{washer}");
    assert_eq!(washer["topic"], d.topic("device-commands.washer"));
    assert_eq!(service.json("/devices/t-1")["last_command"]["command_id"], id);
    let (status, v) = service.get("/devices/%00");
    assert_eq!(status, 400, "{v}");
    assert_eq!(service.get("/homes/h-404/devices").0, 404);
    let lower = format!("bearer {token}");
    let (status, v) =
        service.request("POST", "/devices/t-1/commands", &[("Authorization", &lower), ("Content-Type", "application/json")], heat);
    assert_eq!(status, 202, "the scheme in lower case: {v}");
    assert_eq!(service.terminate().code(), Some(0));
}

#[test]
fn two_instances_share_the_partitions_answer_for_each_others_keys_and_take_over_each_others_state() {
    let d = Deployment::new("iot-pair");
    let instance = |state: &std::path::Path| {
        let port = free_port();
        d.start_on(port, state, &["--advertised-url", &format!("http://127.0.0.1:{port}")])
    };
    let a = instance(d.state.path());
    let b_state = tempfile::tempdir().expect("state dir");
    let b = instance(b_state.path());
    let tasks = |s: &ServiceProcess| s.wait_for("/readyz", |status, v| status == 200 && v["tasks"] == 4).1["tasks"].as_u64();
    assert_eq!((tasks(&a), tasks(&b)), (Some(4), Some(4)), "2 sub-topologies over 4 partitions: 8 tasks, 4 each");

    let washers: Vec<String> = (0..8).map(|i| format!("w-{i}")).collect();
    let entries: Vec<_> = washers
        .iter()
        .map(|id| (Some(id.clone()), json!({"device_id": id, "home_id": "h-1", "kind": "washer"}).to_string().into_bytes()))
        .collect();
    produce(&d.bs, &d.topic("devices"), &entries);
    let readings: Vec<_> = washers
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let v = json!({"device_id": id, "ts": "2026-11-24T12:00:00Z", "detergent_pct": format!("{}", 50 + i)});
            (Some(id.clone()), v.to_string().into_bytes())
        })
        .collect();
    produce(&d.bs, &d.topic("telemetry"), &readings);

    // Either instance answers for every washer: its own from local state, the other's through the owner.
    let reading = |v: &Value| v["latest_reading"]["detergent_pct"].as_str().map(str::to_owned);
    for (i, id) in washers.iter().enumerate() {
        let want = format!("{}", 50 + i);
        for s in [&a, &b] {
            let (status, v) =
                s.wait_for(&format!("/devices/{id}"), |status, v| status == 200 && reading(v).as_deref() == Some(want.as_str()));
            assert_eq!((status, reading(&v)), (200, Some(want.clone())), "{id} on port {}: {v}", s.port);
        }
    }
    // A home's devices live in the tasks of their own keys, over both instances: each lists all eight, its own
    // part and the other's, while each holds only its part.
    let ids = |v: &Value| -> Vec<String> {
        let devices = v["devices"].as_array().cloned().unwrap_or_default();
        devices.iter().filter_map(|d| d["device_id"].as_str().map(str::to_owned)).collect()
    };
    let mut by_id = washers.clone();
    by_id.sort();
    for s in [&a, &b] {
        let (status, home) = s.wait_for("/homes/h-1/devices", |status, v| status == 200 && ids(v).len() == washers.len());
        assert_eq!((status, ids(&home)), (200, by_id.clone()), "port {}: {home}", s.port);
    }
    let part = |s: &ServiceProcess| {
        let (_, body) = s.request("GET", "/homes/h-1/devices", &[(streamcore::routing::FORWARDED_HEADER, "1")], "");
        ids(&serde_json::from_str(&body).unwrap_or(Value::Null)).len()
    };
    assert_eq!(part(&a) + part(&b), washers.len(), "each instance's own part, asked as an owner is asked");
    let forwarded = |s: &ServiceProcess| s.metric("http_requests_total{method=\"GET\",path=\"/devices/{device_id}\",status=\"200\"}");
    // 16 answers to the test, plus one forwarded request per washer to its owner, counted there too.
    assert!(forwarded(&a) + forwarded(&b) >= 24.0, "each washer's query was forwarded once by the instance that does not own it");

    // The instance holding more of sub-topology 0's tasks (the stateful ones: sub-topology 1 only validates and
    // repartitions) is called A from here on. The assignor balances task counts, not sub-topologies, so either
    // instance may hold them all.
    let stateful = |s: &ServiceProcess| {
        let active = s.json("/readyz")["active"].as_array().cloned().unwrap_or_default();
        active.iter().filter(|t| t.as_str().is_some_and(|t| t.starts_with("0_"))).count()
    };
    let (mut a, mut b, mut a_state) = (a, b, d.state.path().to_path_buf());
    if stateful(&b) > stateful(&a) {
        std::mem::swap(&mut a, &mut b);
        a_state = b_state.path().to_path_buf();
    }
    assert!(stateful(&a) > 0, "one of the two holds stateful tasks");

    // A dies without a word; after the session timeout B owns all eight tasks and restores A's state.
    a.kill();
    let (_, ready) = b.wait_for("/readyz", |status, v| status == 200 && v["tasks"] == 8);
    assert_eq!(ready["tasks"], 8, "{ready}");
    for (i, id) in washers.iter().enumerate() {
        let (_, v) = b.wait_for(&format!("/devices/{id}"), |status, _| status == 200);
        assert_eq!(v["latest_reading"]["detergent_pct"], format!("{}", 50 + i), "{id}: {v}");
    }
    let restored_by_b = b.metric("streamcore_restored_records_total");
    assert!(restored_by_b > 0.0, "A's partitions came back from the changelogs");

    // A comes back on its old state directory, long after the session timeout: the group rebalances four tasks to
    // it (cooperative-sticky picks which; each reuses A's local copy as far as it goes and replays the rest).
    let port = free_port();
    let a = d.start_on(port, &a_state, &["--advertised-url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!((tasks(&a), tasks(&b)), (Some(4), Some(4)), "the tasks are shared again");
    for (i, id) in washers.iter().enumerate() {
        let (_, v) = a.wait_for(&format!("/devices/{id}"), |status, _| status == 200);
        assert_eq!(v["latest_reading"]["detergent_pct"], format!("{}", 50 + i), "{id}: {v}");
    }
    // Stopped and started again within the session timeout, A is the same static member: it gets the same four
    // tasks without a rebalance, and its local copies are current, so it replays nothing.
    assert_eq!(a.terminate().code(), Some(0));
    let port = free_port();
    let a = d.start_on(port, &a_state, &["--advertised-url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(tasks(&a), Some(4));
    assert_eq!(a.metric("streamcore_restored_records_total"), 0.0, "A reused its local state");
    for (i, id) in washers.iter().enumerate() {
        let (_, v) = a.wait_for(&format!("/devices/{id}"), |status, _| status == 200);
        assert_eq!(v["latest_reading"]["detergent_pct"], format!("{}", 50 + i), "{id}: {v}");
    }
    assert_eq!(a.terminate().code(), Some(0));
    assert_eq!(b.terminate().code(), Some(0));
}
