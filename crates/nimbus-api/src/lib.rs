//! The local API of the Nimbus service (`nimbusd`): the one definition of
//! what its clients (the `nimbus` CLI, the desktop shell) may ask and what
//! they are told, used by both sides and never copied by hand.
//!
//! The transport is a stream (a Unix socket in the user's runtime folder,
//! a named pipe on Windows) carrying one JSON object per line
//! ([`wire`]). Every request carries the protocol version ([`VERSION`]);
//! the service refuses a version it does not speak, a line longer than
//! [`MAX_FRAME`], and anything that does not decode, with an
//! [`ApiError`] whose [`ErrorCode`] is stable across versions.
//!
//! **Architecture invariant:** this crate holds types, their framing and
//! the words clients show for them ([`text`]) only. It knows nothing of
//! drives, vaults or storage; the service maps its state onto these types.

pub mod client;
pub mod text;
pub mod types;
pub mod wire;

pub use client::{socket_path, Client};
pub use text::human_bytes;
pub use types::*;
pub use wire::{
    answer_version, decode_request, decode_response, encode, RequestFrame, ResponseFrame, MAX_FRAME, OLDEST_VERSION,
    VERSION,
};
