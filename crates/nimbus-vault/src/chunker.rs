//! Content-defined chunking (FastCDC 2020).
//!
//! Cut points depend on the content, not on offsets, so inserting a byte near
//! the start of a large file changes one or two chunks rather than all the
//! chunks after it. The gear table is XORed with a seed derived from the
//! master key, so the same file cuts differently in different vaults.

use serde::{Deserialize, Serialize};
use std::io::Read;

use crate::error::{Result, VaultError};

/// Chunk size limits, stored in `config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    /// FastCDC normalization level, 0..=3.
    pub normalization: u8,
}

impl Default for ChunkerParams {
    /// 256 KiB / 1 MiB / 4 MiB: large enough that a 1 GB file costs about a
    /// thousand index entries, small enough that an edit re-uploads ~1 MiB.
    fn default() -> Self {
        ChunkerParams {
            min_size: 256 << 10,
            avg_size: 1 << 20,
            max_size: 4 << 20,
            normalization: 1,
        }
    }
}

impl ChunkerParams {
    /// Refuses parameters outside what FastCDC accepts (it would panic).
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(VaultError::invalid_input(format!(
                "chunker parameters out of range: {self:?}"
            )))
        }
    }

    fn level(&self) -> fastcdc::v2020::Normalization {
        use fastcdc::v2020::Normalization::*;
        match self.normalization {
            0 => Level0,
            1 => Level1,
            2 => Level2,
            _ => Level3,
        }
    }
}

/// Splits a byte slice; returns `(offset, length)` of each chunk.
///
/// `params` must have passed [`ChunkerParams::validate`].
pub fn chunk_slice(params: &ChunkerParams, seed: u64, data: &[u8]) -> Vec<(usize, usize)> {
    if data.is_empty() {
        return Vec::new();
    }
    fastcdc::v2020::FastCDC::with_level_and_seed(
        data,
        params.min_size,
        params.avg_size,
        params.max_size,
        params.level(),
        seed,
    )
    .map(|c| (c.offset, c.length))
    .collect()
}

/// Splits a stream, calling `each` with every chunk in order.
///
/// `params` must have passed [`ChunkerParams::validate`].
pub fn chunk_reader<R: Read, E>(
    params: &ChunkerParams,
    seed: u64,
    reader: R,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), ChunkReadError<E>> {
    let stream = fastcdc::v2020::StreamCDC::with_level_and_seed(
        reader,
        params.min_size,
        params.avg_size,
        params.max_size,
        params.level(),
        seed,
    );
    for chunk in stream {
        match chunk {
            Ok(c) => each(&c.data).map_err(ChunkReadError::Sink)?,
            Err(fastcdc::v2020::Error::Empty) => break,
            Err(fastcdc::v2020::Error::IoError(e)) => return Err(ChunkReadError::Io(e)),
            Err(fastcdc::v2020::Error::Other(e)) => return Err(ChunkReadError::Io(std::io::Error::other(e))),
        }
    }
    Ok(())
}

/// A failure while chunking a stream: reading it, or handling a chunk.
#[derive(Debug)]
pub enum ChunkReadError<E> {
    Io(std::io::Error),
    Sink(E),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
            normalization: 1,
        }
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    /// Pins the cut points: a change here changes every stored chunk id and
    /// loses deduplication against existing vaults, so it must be deliberate.
    #[test]
    fn boundaries_are_pinned() {
        // A fixed byte stream that does not depend on rand's algorithms.
        let mut data = Vec::with_capacity(1 << 20);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while data.len() < (1 << 20) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        let cuts = chunk_slice(&small(), 0x1234_5678_9abc_def0, &data);
        let digest = blake3::hash(&postcard::to_allocvec(&cuts).unwrap());
        let lens: Vec<usize> = cuts.iter().take(8).map(|c| c.1).collect();
        assert_eq!(
            (cuts.len(), lens, digest.to_hex().to_string()),
            (PINNED_COUNT, PINNED_FIRST.to_vec(), PINNED_DIGEST.to_string()),
        );
    }
    const PINNED_COUNT: usize = 220;
    const PINNED_FIRST: [usize; 8] = [4757, 6805, 6326, 9092, 1948, 6510, 2010, 1491];
    const PINNED_DIGEST: &str = "ab61bdc1234073a85814ec8755bcd9aab0d17aa2aba9e8e9ab51f5b9c1518865";

    #[test]
    fn reader_and_slice_agree() {
        let data = pseudo_random(300_000, 1);
        let mut from_reader = Vec::new();
        chunk_reader::<_, ()>(&small(), 9, &data[..], |c| {
            from_reader.push(c.to_vec());
            Ok(())
        })
        .unwrap();
        let from_slice: Vec<Vec<u8>> = chunk_slice(&small(), 9, &data)
            .into_iter()
            .map(|(o, l)| data[o..o + l].to_vec())
            .collect();
        assert_eq!(from_reader, from_slice);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn chunks_cover_input_within_limits(len in 0usize..200_000, seed in any::<u64>(), s in any::<u64>()) {
            let data = pseudo_random(len, s);
            let p = small();
            let cuts = chunk_slice(&p, seed, &data);
            let mut pos = 0;
            for (i, (off, l)) in cuts.iter().enumerate() {
                prop_assert_eq!(*off, pos);
                prop_assert!(*l as u32 <= p.max_size);
                if i + 1 < cuts.len() { prop_assert!(*l as u32 >= p.min_size); }
                pos += l;
            }
            prop_assert_eq!(pos, data.len());
        }

        /// An insertion changes only the chunks near it: all chunks that end
        /// before it and most chunks after it are found again.
        #[test]
        fn boundaries_stable_under_insertion(s in any::<u64>(), at in 0usize..400_000, ins in proptest::collection::vec(any::<u8>(), 1..100)) {
            let data = pseudo_random(400_000, s);
            let p = small();
            let mut edited = data.clone();
            edited.splice(at..at, ins.iter().copied());
            let set = |d: &[u8]| -> std::collections::HashSet<Vec<u8>> {
                chunk_slice(&p, 7, d).into_iter().map(|(o, l)| d[o..o + l].to_vec()).collect()
            };
            let before = set(&data);
            let after = set(&edited);
            let changed = before.difference(&after).count();
            // One chunk holds the insertion; the cut points after it can take
            // a few chunks to fall back in step (min-size skipping), but
            // never the whole rest of the stream.
            prop_assert!(changed <= 8, "{} of {} chunks changed", changed, before.len());
        }
    }
}
