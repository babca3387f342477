//! Client properties a user passes through (`--kafka-property key=value`, `KAFKA_PROPERTIES`): SASL, TLS and
//! tuning need no code. A property the runtime's guarantees rest on is refused at start-up with the reason, rather
//! than silently undoing the guarantee (auto commit would commit offsets before their outputs were acknowledged).

use super::rebalance;

/// Parses `key=value` pairs separated by commas or newlines (`--kafka-property`, `KAFKA_PROPERTIES`).
pub fn parse_kafka_properties(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).ok_or_else(|| format!("{p:?} is not key=value"))
        })
        .collect()
}

/// The contract's two ways to pass librdkafka properties together: `KAFKA_PROPERTIES` / `--kafka-properties`
/// (comma-separated) and each repeated `--kafka-property key=value`, the latter winning. Properties the runtime's
/// guarantees rest on are refused (see [`check_kafka_properties`]).
pub fn parse_kafka_property_options(list: &str, each: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut all = parse_kafka_properties(list)?;
    for p in each {
        all.extend(parse_kafka_properties(p)?);
    }
    check_kafka_properties(&all)?;
    Ok(all)
}

/// Client properties the runtime sets itself because a guarantee depends on them, with the values it allows
/// (`&[]`: the runtime's alone, set by another option). Offsets are committed by the runtime after the outputs they
/// caused are acknowledged (auto commit would commit before), transactions must not be read before they commit,
/// a new application id must read its input from the start, co-partitioned topics must see the same partitioner
/// as the Java client and the cooperative assignor, and idempotence needs every replica's acknowledgement.
const GUARDED_PROPERTIES: [(&str, &[&str]); 12] = [
    ("enable.auto.commit", &["false"]),
    ("enable.auto.offset.store", &["false"]),
    ("isolation.level", &["read_committed"]),
    ("auto.offset.reset", &["earliest", "smallest", "beginning"]),
    ("enable.idempotence", &["true"]),
    ("acks", &["all", "-1"]),
    ("partitioner", &["murmur2_random"]),
    ("partition.assignment.strategy", &[rebalance::ASSIGNMENT_STRATEGY]),
    ("bootstrap.servers", &[]),
    ("group.id", &[]),
    ("group.instance.id", &[]),
    ("transactional.id", &[]),
];

/// Refuse a user property that would silently undo a guarantee: say which, and why, at start-up.
pub fn check_kafka_properties(properties: &[(String, String)]) -> Result<(), String> {
    for (key, value) in properties {
        let Some((_, allowed)) = GUARDED_PROPERTIES.iter().find(|(k, _)| k == key) else { continue };
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
            return Err(match allowed.first() {
                None => format!("kafka property {key} is the runtime's own (set by --bootstrap, --application-id or the guarantee)"),
                Some(required) => {
                    format!("kafka property {key}={value} would break a processing guarantee; the runtime needs {key}={required}")
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(s: &str) -> Vec<(String, String)> {
        parse_kafka_properties(s).expect("key=value")
    }

    #[test]
    fn tuning_passes_and_guarantees_cannot_be_overridden() {
        assert!(check_kafka_properties(&props("security.protocol=SASL_SSL,linger.ms=20,isolation.level=read_committed,acks=-1")).is_ok());
        for (bad, says) in [
            ("enable.auto.commit=true", "enable.auto.commit=false"),
            ("isolation.level=read_uncommitted", "read_committed"),
            ("enable.idempotence=false", "enable.idempotence=true"),
            ("partitioner=consistent_random", "murmur2_random"),
            ("auto.offset.reset=latest", "earliest"),
            ("acks=1", "acks=all"),
            ("group.id=other", "the runtime's own"),
        ] {
            let e = check_kafka_properties(&props(bad)).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(parse_kafka_property_options("", &["enable.auto.commit=true".into()]).is_err());
    }
}
