//! A folder tree shaped like a real home or project folder, for the put/get
//! benchmark: 120 folders four levels deep, ten thousand small files, some
//! medium ones and a few large ones, text and binary mixed. The same seed
//! gives the same names, bytes and times.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::{random_bytes, text_bytes, Rng};

/// How many files of each class, and their size ranges in bytes.
pub struct Shape {
    pub fanout: [u64; 4],
    pub small: (u64, u64, u64),
    pub medium: (u64, u64, u64),
    pub large: (u64, u64, u64),
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            // 3 + 9 + 27 + 81 = 120 folders under the root.
            fanout: [3, 3, 3, 3],
            small: (10_000, 1 << 10, 16 << 10),
            medium: (60, 100 << 10, 1 << 20),
            large: (6, 5 << 20, 20 << 20),
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Default)]
pub struct Summary {
    pub dirs: u64,
    pub files: u64,
    pub bytes: u64,
    pub text_bytes: u64,
    pub binary_bytes: u64,
}

const DIR_NAMES: &[&str] = &[
    "src", "docs", "photos", "invoices", "2023", "2024", "archive", "projects", "notes", "music", "build", "reports",
    "drafts", "assets", "backup", "mail", "logs", "data", "scans", "misc",
];
const STEMS: &[&str] = &[
    "report",
    "notes",
    "invoice",
    "readme",
    "main",
    "config",
    "summary",
    "draft",
    "IMG",
    "scan",
    "budget",
    "letter",
    "todo",
    "changelog",
    "export",
    "module",
    "test",
    "index",
    "style",
    "record",
];
const TEXT_EXT: &[&str] = &["txt", "md", "log", "csv", "rs", "json", "html"];
const BIN_EXT: &[&str] = &["jpg", "png", "pdf", "zip", "bin", "mp3"];

/// Writes the tree under `root`, which must not exist yet.
pub fn generate(root: &Path, seed: u64, shape: &Shape) -> std::io::Result<Summary> {
    let mut rng = Rng::new(seed);
    let mut sum = Summary::default();
    std::fs::create_dir(root)?;

    // Folders, breadth first, so `dirs[0]` is the root.
    let mut dirs = vec![root.to_path_buf()];
    let mut level = vec![root.to_path_buf()];
    for &fan in &shape.fanout {
        let mut next = Vec::new();
        for parent in &level {
            for i in 0..fan {
                let name = format!("{}-{i}", DIR_NAMES[rng.below(DIR_NAMES.len() as u64) as usize]);
                let p = parent.join(name);
                std::fs::create_dir(&p)?;
                next.push(p);
            }
        }
        dirs.extend(next.iter().cloned());
        level = next;
    }
    sum.dirs = dirs.len() as u64 - 1;

    // Small files are mostly text; larger ones lean towards binary, as photos
    // and archives do.
    let classes = [(shape.small, 75), (shape.medium, 50), (shape.large, 50)];
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut n = 0u64;
    for ((count, lo, hi), text_percent) in classes {
        for _ in 0..count {
            let dir = &dirs[rng.below(dirs.len() as u64) as usize];
            let size = rng.range(lo, hi) as usize;
            let text = rng.below(100) < text_percent;
            let content_seed = rng.next_u64();
            let stem = STEMS[rng.below(STEMS.len() as u64) as usize];
            let ext = if text {
                TEXT_EXT[rng.below(TEXT_EXT.len() as u64) as usize]
            } else {
                BIN_EXT[rng.below(BIN_EXT.len() as u64) as usize]
            };
            let path: PathBuf = dir.join(format!("{stem}-{n:05}.{ext}"));
            let data = if text {
                text_bytes(content_seed, size)
            } else {
                random_bytes(content_seed, size)
            };
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&data)?;
            f.set_modified(base + Duration::from_secs(n * 37))?;
            n += 1;
            sum.files += 1;
            sum.bytes += size as u64;
            if text {
                sum.text_bytes += size as u64;
            } else {
                sum.binary_bytes += size as u64;
            }
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tree() {
        let shape = Shape {
            fanout: [2, 2, 1, 1],
            small: (30, 1 << 10, 4 << 10),
            medium: (2, 8 << 10, 16 << 10),
            large: (1, 64 << 10, 64 << 10),
        };
        let base = std::env::temp_dir().join(format!("nimbus-bench-tree-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let a = generate(&base.join("a"), 5, &shape).unwrap();
        let b = generate(&base.join("b"), 5, &shape).unwrap();
        assert_eq!((a.dirs, a.files, a.bytes), (b.dirs, b.files, b.bytes));
        assert_eq!(a.dirs, 2 + 4 + 4 + 4);
        assert_eq!(a.files, 33);
        let list = |r: &Path| {
            let mut v = Vec::new();
            let mut stack = vec![r.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        v.push((p.strip_prefix(r).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
                    }
                }
            }
            v.sort();
            v
        };
        assert_eq!(list(&base.join("a")), list(&base.join("b")));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
