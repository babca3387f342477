//! Peak memory of this process, from Linux's `/proc/self/status` (`VmHWM`, the resident-set high-water mark).
//! Writing `5` to `/proc/self/clear_refs` resets the mark, so each benchmark run gets its own peak; and the
//! comparison every service benchmark prints: the plain loop before and after, the service in between.

/// Reset the high-water mark to the current resident set.
pub(crate) fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak-memory mark ({e}); peaks include earlier runs");
    }
}

/// The peak resident set since the last reset, in MiB.
pub(crate) fn peak_mib() -> f64 {
    peak_mib_of("self").unwrap_or(0.0)
}

/// The peak resident set of process `pid` (a number, or `self`), in MiB, when `/proc` tells it.
pub(crate) fn peak_mib_of(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// Run `plain` (the baseline), `service`, and `plain` again, each with its own peak memory, and print the table:
/// records/s beside the baseline (the mean of its two runs), the ratio, and the peaks.
pub(crate) fn beside_plain_loop(
    unit: &str,
    service_name: &str,
    mut plain: impl FnMut() -> anyhow::Result<f64>,
    service: impl FnOnce() -> anyhow::Result<f64>,
) -> anyhow::Result<()> {
    reset_peak();
    let before = plain()?;
    let plain_peak = peak_mib();
    reset_peak();
    let measured = service()?;
    let service_peak = peak_mib();
    reset_peak();
    let after = plain()?;
    let baseline = (before + after) / 2.0;
    println!();
    println!("| path | {unit}/s | ratio to plain loop | peak memory |");
    println!("|---|---:|---:|---:|");
    println!("| plain rdkafka loop (baseline, mean of a run before and after) | {baseline:.0} | 1.00 | {plain_peak:.0} MiB |");
    println!("| {service_name} | {measured:.0} | {:.2} | {service_peak:.0} MiB |", measured / baseline);
    println!("(baseline runs: {before:.0} and {after:.0} {unit}/s)");
    Ok(())
}
