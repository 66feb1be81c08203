//! A test hook: `BATON_CRASH_AFTER_MUTATIONS=N` aborts the process right after its Nth
//! mutation, before the journal records it, as a crash would.

/// Crash tests: `BATON_CRASH_AFTER_MUTATIONS=k` aborts the process (as `kill -9` would:
/// no cleanup, no journal record) right after the k-th mutation of the run has been made.
pub fn crash_point() {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if std::env::var("BATON_CRASH_AFTER_MUTATIONS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        == Some(made)
    {
        errln!("baton: crashing after mutation {made} (BATON_CRASH_AFTER_MUTATIONS)");
        std::process::abort();
    }
}
