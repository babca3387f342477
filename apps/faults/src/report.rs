//! The suite's table, in Markdown.

use crate::scenario::Row;
use std::fmt::Write;

/// The header and one line per row.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | standbys | guarantee | records | missing | duplicates | wrong aggregates | dead letters (injected) | late (injected) | recovery | restored | restore rec/s | aborts | exits |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let v = &r.verdict;
        let rate = if r.restore_seconds > 0.0 { format!("{:.0}", r.restored / r.restore_seconds) } else { "-".into() };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {:.1} s | {:.0} | {} | {:.0} | {} |",
            r.scenario,
            r.standby_replicas,
            r.guarantee,
            r.records,
            v.missing,
            v.duplicates,
            v.wrong_aggregates,
            v.dead_letters,
            r.malformed,
            v.late,
            r.late,
            r.recovery.as_secs_f64(),
            r.restored,
            rate,
            r.aborts,
            r.exits,
        );
    }
    out
}

/// What a row must show: under exactly-once nothing missing or duplicated, the aggregates right and the dead and
/// late records exactly those injected; under at-least-once nothing missing, and at least those injected. `None`
/// when the row passes.
pub fn failure(r: &Row) -> Option<String> {
    let v = &r.verdict;
    let exactly_once = r.guarantee == streamcore::runtime::Guarantee::ExactlyOnce;
    let problems: Vec<String> = [
        (v.missing > 0).then(|| format!("{} missing", v.missing)),
        (exactly_once && v.duplicates > 0).then(|| format!("{} duplicates", v.duplicates)),
        (exactly_once && v.wrong_aggregates > 0).then(|| format!("{} wrong aggregates", v.wrong_aggregates)),
        (exactly_once && v.dead_letters != r.malformed as u64 || v.dead_letters < r.malformed as u64)
            .then(|| format!("{} dead letters for {} injected", v.dead_letters, r.malformed)),
        (exactly_once && v.late != r.late as u64 || v.late < r.late as u64).then(|| format!("{} late for {} injected", v.late, r.late)),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!problems.is_empty()).then(|| format!("{} under {}: {}", r.scenario, r.guarantee, problems.join(", ")))
}
