//! Peak memory of this process, from Linux's `/proc/self/status` (`VmHWM`, the resident-set high-water mark).
//! Writing `5` to `/proc/self/clear_refs` resets the mark, so each benchmark run gets its own peak.

/// Reset the high-water mark to the current resident set.
pub(crate) fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak-memory mark ({e}); peaks include earlier runs");
    }
}

/// The peak resident set since the last reset, in MiB.
pub(crate) fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
