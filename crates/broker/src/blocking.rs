//! Blocking file work (an fsync) done from an async task: on a
//! multi-threaded tokio runtime the worker hands its other tasks to
//! another thread first (`block_in_place`), so one durable declare does
//! not stall every connection that shares the worker. Elsewhere (plain
//! threads, single-threaded test runtimes) the work just runs.

/// Runs `f`, which may block on the disk.
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
