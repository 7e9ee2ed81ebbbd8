//! The local caches of file content: blobs as fetched (`blobs.rs`, with
//! its memory and disk levels), blobs decoded for random reads
//! (`decoded.rs`), the size-limited index both keep (`index.rs`), and the
//! sealed 4 KiB-slot file that the decoded cache and staging are made of
//! (`sealed_file.rs`).

pub(crate) mod blobs;
pub(crate) mod decoded;
pub(crate) mod index;
pub(crate) mod sealed_file;
