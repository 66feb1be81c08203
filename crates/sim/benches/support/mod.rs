//! What the emulator's benchmarks share: memory figures from `/proc/self/status` and where
//! results are written.

use std::path::PathBuf;

/// A `/proc/self/status` figure (`VmRSS`, `VmHWM`, …) of this process, in bytes (Linux).
pub fn proc_status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `$CARGO_TARGET_DIR/bench-results/<file>` (the workspace's `target/` when unset).
fn results_path(file: &str) -> PathBuf {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if PathBuf::from(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("bench-results").join(file)
}

/// Writes the report as pretty JSON to [`results_path`] and says where.
pub fn write_results(file: &str, report: &serde_json::Value) {
    let path = results_path(file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    let text = serde_json::to_string_pretty(report).expect("serialize the results");
    std::fs::write(&path, text + "\n")
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("\nresults written to {}", path.display());
}
