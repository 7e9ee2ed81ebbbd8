//! `nimbus-bench-pipeline`: times Nimbus's write pipeline on data in memory.
//!
//! ```text
//! nimbus-bench-pipeline [--runs N] [--zstd-level L] <file>   the whole pipeline
//! nimbus-bench-pipeline --stages [--runs N] <file>           each step of it alone
//! nimbus-bench-pipeline --aes-only [--runs N] [--mib M]      AES-256-GCM on 1 MiB buffers
//! ```
//!
//! The file is read into memory before the clock starts, so only CPU work is
//! timed. Each measurement is the best of N runs (3 by default): on a shared
//! machine the best run is the one least disturbed by other work. Results are
//! printed as `key=value` lines for `bench/pipeline.sh`; MB is 10^6 bytes of
//! plaintext input.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{bail, Context, Result};
use nimbus_vault::chunker::{chunk_slice, ChunkerParams};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Opts {
    runs: u32,
    zstd_level: i32,
    mib: usize,
    mode: Mode,
    file: Option<String>,
}

#[derive(PartialEq)]
enum Mode {
    Pipeline,
    Stages,
    AesOnly,
}

fn parse() -> Result<Opts> {
    let mut o = Opts {
        runs: 3,
        zstd_level: 3,
        mib: 1024,
        mode: Mode::Pipeline,
        file: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--runs" => o.runs = value("--runs")?.parse()?,
            "--zstd-level" => o.zstd_level = value("--zstd-level")?.parse()?,
            "--mib" => o.mib = value("--mib")?.parse()?,
            "--stages" => o.mode = Mode::Stages,
            "--aes-only" => o.mode = Mode::AesOnly,
            s if s.starts_with('-') => bail!("unknown option {s}"),
            _ => o.file = Some(a),
        }
    }
    if o.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if o.mode != Mode::AesOnly && o.file.is_none() {
        bail!("usage: nimbus-bench-pipeline [--stages] [--runs N] [--zstd-level L] <file> | --aes-only [--mib M]");
    }
    Ok(o)
}

/// Runs `f` `runs` times; returns the shortest time and the last result.
fn best_of<T>(runs: u32, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = black_box(f());
        best = best.min(t.elapsed());
        last = Some(r);
    }
    (best, last.expect("runs >= 1"))
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {path}"))
}

/// The CPU features the `aes` and `polyval` crates look for at run time.
fn cpu_features() -> (bool, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        (
            std::arch::is_x86_feature_detected!("aes"),
            std::arch::is_x86_feature_detected!("pclmulqdq"),
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (false, false)
    }
}

fn cipher() -> Aes256Gcm {
    Aes256Gcm::new(&[7u8; 32].into())
}

/// Seals like `nimbus_vault::crypto::seal`: fresh 12-byte nonce, ~50 bytes of
/// associated data, a new output buffer per call.
fn seal(c: &Aes256Gcm, counter: u64, msg: &[u8]) -> usize {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    let aad = [0x5au8; 50];
    match c.encrypt(&Nonce::from(nonce), Payload { msg, aad: &aad }) {
        Ok(ct) => ct.len(),
        Err(_) => unreachable!("1 MiB is far below the AES-GCM limit"),
    }
}

fn aes_only(o: &Opts) {
    let (aes, pclmul) = cpu_features();
    println!("runtime_aes={} runtime_pclmulqdq={}", aes as u8, pclmul as u8);
    let buf = nimbus_bench::random_bytes(3, 1 << 20);
    let c = cipher();
    let (d, _) = best_of(o.runs, || {
        let mut n = 0;
        for i in 0..o.mib {
            n += seal(&c, i as u64, &buf);
        }
        n
    });
    println!(
        "aes_gcm bytes={} best_s={:.4} mbps={:.1}",
        o.mib << 20,
        d.as_secs_f64(),
        mbps(o.mib << 20, d)
    );
}

fn pipeline(o: &Opts, path: &str) -> Result<()> {
    let data = read(path)?;
    let params = ChunkerParams::default();
    let (d, sealed) = best_of(o.runs, || nimbus_vault::fuzzing::pipeline(&data, &params, o.zstd_level));
    println!(
        "pipeline bytes={} sealed={} best_s={:.4} mbps={:.1}",
        data.len(),
        sealed,
        d.as_secs_f64(),
        mbps(data.len(), d)
    );
    Ok(())
}

/// Each step of the pipeline alone, on the same chunks, to show where the time
/// goes. The sum is close to, but not exactly, the pipeline's time: the
/// pipeline also copies each payload into new buffers.
fn stages(o: &Opts, path: &str) -> Result<()> {
    let data = read(path)?;
    let params = ChunkerParams::default();
    let seed = 0x6e69_6d62_7573;
    let (d, chunks) = best_of(o.runs, || chunk_slice(&params, seed, &data));
    let report = |name: &str, d: Duration| {
        println!(
            "stage name={name} best_s={:.4} mbps={:.1}",
            d.as_secs_f64(),
            mbps(data.len(), d)
        )
    };
    report("chunk", d);

    let key = [9u8; 32];
    let (d, _) = best_of(o.runs, || {
        let mut x = 0u8;
        for &(off, len) in &chunks {
            let mut h = blake3::Hasher::new_keyed(&key);
            h.update(&[0]);
            h.update(&data[off..off + len]);
            x ^= h.finalize().as_bytes()[0];
        }
        x
    });
    report("blake3", d);

    let (d, payloads) = best_of(o.runs, || {
        chunks
            .iter()
            .map(|&(off, len)| {
                let c = &data[off..off + len];
                match zstd::bulk::compress(c, o.zstd_level) {
                    Ok(z) if z.len() + 1 < c.len() => z,
                    _ => c.to_vec(),
                }
            })
            .collect::<Vec<_>>()
    });
    report("zstd", d);
    let payload_bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "stage_payload bytes={} ratio={:.2}",
        payload_bytes,
        data.len() as f64 / payload_bytes as f64
    );

    let c = cipher();
    let (d, _) = best_of(o.runs, || {
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| seal(&c, i as u64, p))
            .sum::<usize>()
    });
    report("aes_gcm", d);
    Ok(())
}

fn main() -> Result<()> {
    let o = parse()?;
    match (&o.mode, o.file.as_deref()) {
        (Mode::AesOnly, _) => aes_only(&o),
        (Mode::Pipeline, Some(f)) => pipeline(&o, f)?,
        (Mode::Stages, Some(f)) => stages(&o, f)?,
        _ => unreachable!("parse() checked the file"),
    }
    Ok(())
}
