//! Deterministic test data for the benchmarks in `bench/`: a seeded PRNG,
//! random bytes, and text that compresses like real logs and documents.
//!
//! Everything here is a pure function of the seed, so every run of
//! `bench/*.sh` — on any machine, with any toolchain — measures the same
//! bytes. That is why the PRNG is written out here instead of taken from
//! `rand`, whose `StdRng` is allowed to change between versions.

pub mod tree;

/// xoshiro256** seeded through splitmix64: fast, small, and fixed forever.
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (n > 0); the tiny modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Skewed towards small indices, like word frequencies in real text.
    fn zipfish(&mut self, n: usize) -> usize {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64) * u * u * u * u) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }
}

/// `len` bytes of PRNG output: incompressible, like media or encrypted files.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "request",
    "response",
    "server",
    "client",
    "connection",
    "timeout",
    "retry",
    "cache",
    "miss",
    "hit",
    "upload",
    "download",
    "chunk",
    "index",
    "snapshot",
    "vault",
    "commit",
    "folder",
    "file",
    "error",
    "warning",
    "started",
    "finished",
    "queued",
    "worker",
    "thread",
    "session",
    "token",
    "expired",
    "user",
    "account",
    "billing",
    "invoice",
    "customer",
    "order",
    "shipment",
    "delivered",
    "pending",
    "failed",
    "succeeded",
    "database",
    "query",
    "transaction",
    "rollback",
    "latency",
    "throughput",
    "bytes",
    "records",
    "scheduled",
    "backup",
    "restore",
    "checksum",
    "mismatch",
    "verified",
    "skipped",
    "deleted",
    "created",
    "updated",
    "renamed",
    "moved",
    "permission",
    "denied",
    "granted",
    "network",
    "interface",
    "address",
    "configuration",
    "reloaded",
    "migration",
    "version",
    "release",
    "deploy",
    "rollout",
    "health",
    "check",
    "passed",
    "degraded",
    "recovered",
    "memory",
    "pressure",
    "garbage",
    "collection",
    "pause",
    "allocation",
    "report",
    "quarterly",
    "revenue",
    "meeting",
    "agenda",
    "minutes",
    "project",
    "deadline",
    "review",
    "approved",
    "rejected",
    "draft",
    "final",
    "summary",
    "appendix",
    "table",
    "figure",
    "section",
    "chapter",
    "because",
    "however",
    "therefore",
    "although",
    "between",
    "during",
    "without",
    "within",
    "against",
    "through",
    "after",
    "before",
    "under",
    "over",
    "about",
    "again",
    "further",
    "then",
    "once",
    "here",
    "why",
    "how",
    "both",
    "each",
    "few",
    "most",
    "other",
    "some",
    "such",
    "only",
    "own",
    "same",
    "than",
    "too",
    "very",
];

const COMPONENTS: &[&str] = &[
    "api",
    "auth",
    "billing",
    "cache",
    "db",
    "gateway",
    "indexer",
    "mailer",
    "scheduler",
    "search",
    "storage",
    "sync",
    "uploader",
    "web",
    "worker",
    "metrics",
    "notifier",
    "queue",
    "router",
    "thumbnailer",
];

const LEVELS: &[&str] = &[
    "INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "INFO", "WARN", "ERROR", "INFO",
];

/// Appends one line of text: a log line most of the time, otherwise a line of
/// prose or a CSV record. Ids, counters and timings are random digits, so the
/// text compresses like real logs (zstd about 3-4x), not like repeated filler.
pub fn text_line(rng: &mut Rng, clock_ms: &mut u64, out: &mut Vec<u8>) {
    use std::io::Write;
    match rng.below(10) {
        0..=5 => {
            *clock_ms += rng.range(1, 900);
            let t = *clock_ms;
            let (s, ms) = (t / 1000, t % 1000);
            let (d, h, m, sec) = (s / 86400 % 28 + 1, s / 3600 % 24, s / 60 % 60, s % 60);
            let _ = write!(
                out,
                "2024-03-{d:02}T{h:02}:{m:02}:{sec:02}.{ms:03}Z {:<5} [{}-{}] ",
                LEVELS[rng.below(LEVELS.len() as u64) as usize],
                COMPONENTS[rng.below(COMPONENTS.len() as u64) as usize],
                rng.below(16),
            );
            for _ in 0..rng.range(3, 9) {
                out.extend_from_slice(WORDS[rng.zipfish(WORDS.len())].as_bytes());
                out.push(b' ');
            }
            let _ = writeln!(
                out,
                "id={:08x} user={} bytes={} dur_ms={}.{}",
                rng.next_u64() as u32,
                rng.below(300),
                [0, 512, 4096, 16_384, 65_536, 1 << 20][rng.below(6) as usize],
                rng.below(200),
                rng.below(10),
            );
        }
        6..=8 => {
            let n = rng.range(6, 18);
            for i in 0..n {
                let w = WORDS[rng.zipfish(WORDS.len())];
                if i == 0 {
                    let mut c = w.as_bytes().to_vec();
                    c[0] = c[0].to_ascii_uppercase();
                    out.extend_from_slice(&c);
                } else {
                    out.push(b' ');
                    out.extend_from_slice(w.as_bytes());
                }
            }
            out.extend_from_slice(b".\n");
        }
        _ => {
            let _ = writeln!(
                out,
                "{},{},{},{}.{:02},{}",
                rng.below(1_000_000),
                WORDS[rng.zipfish(WORDS.len())],
                COMPONENTS[rng.below(COMPONENTS.len() as u64) as usize],
                rng.below(10_000),
                rng.below(100),
                if rng.below(4) == 0 { "pending" } else { "done" },
            );
        }
    }
}

/// Exactly `len` bytes of text-like data.
pub fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut clock = rng.below(86_400_000 * 27);
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        text_line(&mut rng, &mut clock, &mut out);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_pinned() {
        // If these change, tables from earlier runs stop being comparable.
        assert_eq!(Rng::new(1).next_u64(), 12966619160104079557);
        assert_eq!(
            blake3::hash(&text_bytes(7, 1 << 16)).to_hex().as_str(),
            "0883bf313df46d48e02c2e0898c324a90ec6a5b2104288f2196fcd7d7056c3e2"
        );
        let t = text_bytes(7, 4096);
        assert_eq!(t.len(), 4096);
        assert_ne!(random_bytes(1, 64), random_bytes(2, 64));
    }
}
