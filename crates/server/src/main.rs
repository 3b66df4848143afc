//! The `warren` binary; everything is in the library (`lib.rs`), which
//! the fuzz targets link too.

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("choose one allocator: mimalloc needs --no-default-features");

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compile-time options: a background thread purges dirty pages
/// after 1 s (without it, an idle broker never gives memory back), and
/// purged pages go straight back to the OS. `_RJEM_MALLOC_CONF` in the
/// environment still overrides them.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: Option<&'static std::ffi::c_char> = Some(unsafe {
    // SAFETY: a NUL-terminated byte string reinterpreted as C chars, which
    // have the same size and alignment as u8.
    ConfBytes {
        bytes: &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0],
    }
    .chars
});

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
union ConfBytes {
    bytes: &'static u8,
    chars: &'static std::ffi::c_char,
}

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    warren_server::main()
}
