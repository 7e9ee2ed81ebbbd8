//! `nimbus-bench-gen`: writes the benchmark inputs.
//!
//! ```text
//! nimbus-bench-gen random <file> <MiB> [seed]   incompressible bytes
//! nimbus-bench-gen text   <file> <MiB> [seed]   log/prose/CSV lines (zstd ~3-4x)
//! nimbus-bench-gen tree   <dir>        [seed]   ~10,000 files, ~200 MB, 120 folders
//! ```

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed_at = |i: usize| -> Result<u64> {
        args.get(i)
            .map(|s| s.parse().context("the seed must be a number"))
            .unwrap_or(Ok(1))
    };
    match args.first().map(String::as_str) {
        Some(kind @ ("random" | "text")) if args.len() >= 3 => {
            let path = PathBuf::from(&args[1]);
            let mib: usize = args[2].parse().context("the size must be a whole number of MiB")?;
            let seed = seed_at(3)?;
            let data = if kind == "random" {
                nimbus_bench::random_bytes(seed, mib << 20)
            } else {
                nimbus_bench::text_bytes(seed, mib << 20)
            };
            std::fs::write(&path, &data).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Some("tree") if args.len() >= 2 => {
            let root = PathBuf::from(&args[1]);
            let s = nimbus_bench::tree::generate(&root, seed_at(2)?, &Default::default())
                .with_context(|| format!("cannot write the tree under {}", root.display()))?;
            println!(
                "dirs={} files={} bytes={} text_bytes={} binary_bytes={}",
                s.dirs, s.files, s.bytes, s.text_bytes, s.binary_bytes
            );
        }
        _ => bail!("usage: nimbus-bench-gen random|text <file> <MiB> [seed] | tree <dir> [seed]"),
    }
    Ok(())
}
