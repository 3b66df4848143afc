//! The `warren` binary; everything is in the library (`lib.rs`), which
//! the fuzz targets link too.

fn main() -> anyhow::Result<()> {
    warren_server::main()
}
