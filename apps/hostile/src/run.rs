//! The runner: one service at a time, against the real broker. Its input topics get the good records with every
//! bad record interleaved; once it has caught up (committed the end of each input), the dead-letter topic, the
//! late topic and the outputs are read whole and held against what each record must become.

use crate::cases::{Case, Expect};
use crate::services::{Context, Service};
use std::time::{Duration, Instant};
use streamcore::testkit::kafka::{create_topic, produce, read_to_end, send_raw, wait_caught_up};
use streamcore::Runtime;

/// One service's row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The service.
    pub service: &'static str,
    /// Bad records sent, and how many of them must be dead-lettered.
    pub bad_sent: usize,
    /// Dead letters that point at this run's input topics, each with an `error` header.
    pub dead_lettered: usize,
    /// Of those the cases say must be dead-lettered.
    pub dead_letters_expected: usize,
    /// Good records sent (counted ones, plus cases that are valid).
    pub good_in: usize,
    /// Their outputs.
    pub outputs_out: usize,
    /// Outputs expected.
    pub outputs_expected: usize,
    /// Records on `<service>.late`, and how many the cases send there.
    pub late: (usize, usize),
    /// Stream-thread restarts (must be 0).
    pub restarts: u64,
    /// Cases that must be dead-lettered and are not on the dead-letter topic (their names).
    pub not_dead_lettered: Vec<String>,
    /// Reasons of dead letters that match no such case (good records refused).
    pub unexpected_dead_letters: Vec<String>,
}

impl Row {
    /// Whether the service did what the contract says with every record.
    pub fn passed(&self) -> bool {
        self.dead_lettered == self.dead_letters_expected
            && self.not_dead_lettered.is_empty()
            && self.outputs_out == self.outputs_expected
            && self.late.0 == self.late.1
            && self.restarts == 0
    }
}

/// A record as bytes: key and value, either possibly absent.
type Raw = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Good and bad records, a bad one after every few good ones.
fn interleave(good: &[(String, serde_json::Value)], bad: &[Case]) -> Vec<Raw> {
    let step = (good.len() / bad.len().max(1)).max(1);
    let mut bad = bad.iter();
    let mut out = Vec::new();
    for (i, (k, v)) in good.iter().enumerate() {
        out.push((Some(k.clone().into_bytes()), serde_json::to_vec(v).ok()));
        if i % step == step - 1 {
            if let Some(c) = bad.next() {
                out.push((c.key.clone(), c.value.clone()));
            }
        }
    }
    out.extend(bad.map(|c| (c.key.clone(), c.value.clone())));
    out
}

/// Run `service` (application id `app`, topics under `prefix`, state under `state`) and report.
pub fn run(service: Service, bootstrap: &str, prefix: &str, app: &str, state: &std::path::Path) -> anyhow::Result<Row> {
    for input in &service.inputs {
        create_topic(bootstrap, &input.topic, 2, input.target.table);
    }
    for (topic, key, value) in &service.setup {
        create_topic(bootstrap, topic, 2, true);
        produce(bootstrap, topic, &[(Some(key.clone()), serde_json::to_vec(value)?)]);
    }
    let registry = prometheus::Registry::new();
    // What the topology reads besides the inputs: what it writes itself, repartition topics and a later
    // sub-topology's input (the top-10's daily changes).
    let t = &service.topology;
    let written: Vec<&str> = t.internal_topics().iter().map(String::as_str).chain(t.sink_topics()).collect();
    let fed_back: Vec<String> = t.source_topics().into_iter().filter(|s| written.contains(s)).map(str::to_owned).collect();
    let rt = Runtime::new(service.topology, crate::services::config(service.name, bootstrap, prefix, state), &registry)?;
    let stores = rt.stores();
    let stop = rt.shutdown_handle();
    let thread = rt.spawn()?;
    let mut must_dead_letter: Vec<(String, Case)> = Vec::new();
    let (mut bad_sent, mut expected_dlq, mut good_in, mut expected_outputs, mut expected_late) = (0, 0, 0, 0, 0);
    for input in &service.inputs {
        let cases = input.target.cases();
        bad_sent += cases.len();
        expected_dlq += cases.iter().filter(|c| c.expect == Expect::DeadLetter).count();
        must_dead_letter.extend(cases.iter().filter(|c| c.expect == Expect::DeadLetter).map(|c| (input.topic.clone(), c.clone())));
        expected_late += cases.iter().filter(|c| c.expect == Expect::Late).count();
        let valid = cases.iter().filter(|c| matches!(c.expect, Expect::Output | Expect::Processed)).count();
        good_in += input.good.len() + valid;
        if input.counted {
            expected_outputs += input.good.len() + cases.iter().filter(|c| c.expect == Expect::Output).count();
        }
        produce_raw(bootstrap, &input.topic, &interleave(&input.good, &cases))?;
        anyhow::ensure!(
            wait_caught_up(bootstrap, app, &input.topic, Duration::from_secs(120)),
            "{} did not commit the end of {} within 2 minutes",
            service.name,
            input.topic
        );
    }
    for topic in fed_back {
        anyhow::ensure!(wait_caught_up(bootstrap, app, &topic, Duration::from_secs(300)), "{app} did not catch up on {topic}");
    }
    let ctx = Context { bootstrap, prefix, stores: &stores };
    // Outputs that live in stores are applied right after the commit: await the count rather than a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut outputs_out = (service.outputs)(&ctx)?;
    while outputs_out < expected_outputs && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        outputs_out = (service.outputs)(&ctx)?;
    }
    stop.trigger();
    thread.join().map_err(|_| anyhow::anyhow!("a stream thread panicked"))??;
    let restarts = registry
        .gather()
        .iter()
        .filter(|f| f.name() == "streamcore_thread_restarts_total")
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value() as u64).collect::<Vec<_>>())
        .sum();
    let inputs: Vec<&str> = service.inputs.iter().map(|i| i.topic.as_str()).collect();
    let dlq = read_to_end(bootstrap, &format!("{prefix}{}.dlq", service.name), Duration::from_secs(60))?;
    let ours: Vec<_> = dlq
        .iter()
        .filter(|r| r.headers.get("source.topic").is_some_and(|t| inputs.contains(&t.as_str()) || t.contains("-repartition")))
        .filter(|r| r.headers.get("error").is_some_and(|e| !e.is_empty()))
        .collect();
    // Each case by its bytes: the dead letter keeps the key and the value (its beginning, when cut to fit).
    let matches = |c: &Case, r: &streamcore::testkit::kafka::Consumed| {
        let key = c.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned());
        let cut = r.headers.contains_key("value.truncated.from");
        let value_ok = match (&c.value, &r.value) {
            (Some(sent), Some(got)) => sent == got || (cut && sent.starts_with(got)),
            (None, None) => true,
            _ => false,
        };
        key == r.key && value_ok
    };
    let not_dead_lettered: Vec<String> = must_dead_letter
        .iter()
        .filter(|(topic, c)| !ours.iter().any(|r| r.headers.get("source.topic") == Some(topic) && matches(c, r)))
        .map(|(topic, c)| format!("{topic}: {}", c.name))
        .collect();
    let unexpected_dead_letters: Vec<String> = ours
        .iter()
        .filter(|r| !must_dead_letter.iter().any(|(_, c)| matches(c, r)))
        .map(|r| r.headers.get("error").cloned().unwrap_or_default())
        .collect();
    let dead_lettered = ours.len();
    // One late record per windowed operator that refused it: count the input records.
    let late = match read_to_end(bootstrap, &format!("{prefix}{}.late", service.name), Duration::from_secs(10)) {
        Ok(records) => {
            let inputs: std::collections::BTreeSet<_> =
                records.iter().map(|r| (r.headers.get("source.partition").cloned(), r.headers.get("source.offset").cloned())).collect();
            inputs.len()
        }
        Err(_) => 0, // a service without windows has no late topic
    };
    Ok(Row {
        service: service.name,
        bad_sent,
        dead_lettered,
        dead_letters_expected: expected_dlq,
        good_in,
        outputs_out,
        outputs_expected: expected_outputs,
        late: (late, expected_late),
        restarts,
        not_dead_lettered,
        unexpected_dead_letters,
    })
}

/// Produce records whose keys and values may be any bytes (or none), and wait until all are acknowledged; then
/// check that the topic grew by exactly as many records (a producer drops a refused batch without a word).
fn produce_raw(bootstrap: &str, topic: &str, records: &[Raw]) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::Producer;
    let p = streamcore::testkit::kafka::producer(bootstrap);
    let probe: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let size = |probe: &BaseConsumer| -> anyhow::Result<i64> {
        let md = probe.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let mut total = 0;
        for part in md.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = probe.fetch_watermarks(topic, part.id(), Duration::from_secs(10))?;
            total += high - low;
        }
        Ok(total)
    };
    let before = size(&probe)?;
    for (k, v) in records {
        // A record near the size limit travels alone: batched with others it would make the batch too large.
        let large = v.as_ref().is_some_and(|v| v.len() > 100_000);
        if large {
            p.flush(Duration::from_secs(60))?;
        }
        send_raw(&p, topic, k.as_deref(), v.as_deref()).map_err(|e| anyhow::anyhow!("producing to {topic}: {e}"))?;
        if large {
            p.flush(Duration::from_secs(60))?;
        }
    }
    p.flush(Duration::from_secs(60))?;
    let written = size(&probe)? - before;
    anyhow::ensure!(written == records.len() as i64, "{topic}: {written} of {} records written", records.len());
    Ok(())
}
