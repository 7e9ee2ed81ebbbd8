//! The answers of the multi-device API that the core cannot give yet, all
//! in one place (docs/SYNC.md §7: step 25 replaces each with the real one):
//! the conflicts, and a status's `merging` and `conflicts` counts. The
//! devices are real (`devices.rs`). They say so in plain words with the
//! code `unsupported`; none pretends to succeed.

use nimbus_api::{ApiError, ErrorCode, SyncStatus};

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unsupported,
        format!(
            "{what}: this version of Nimbus keeps both versions of a file changed on two devices \
             (the other one as a conflict copy beside it, named after its device and time), \
             but cannot list them yet; look for `(conflict` in the file names"
        ),
    )
}

/// `conflicts`: not listed yet (the copies are made, docs/SYNC.md §3.6).
pub fn conflicts(drive: &str) -> ApiError {
    unsupported(&format!("cannot list the conflicts of drive `{drive}`"))
}

/// `resolve_conflict`.
pub fn resolve_conflict(drive: &str) -> ApiError {
    unsupported(&format!("cannot resolve a conflict in drive `{drive}`"))
}

/// A drive status's `sync` part that the drive does not fill yet: no
/// merge is shown running, no conflict counted.
pub fn sync_status() -> SyncStatus {
    SyncStatus::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_not_yet_answers_are_errors_in_plain_words() {
        for e in [conflicts("work"), resolve_conflict("work")] {
            assert_eq!(e.code, ErrorCode::Unsupported);
            assert!(e.message.contains("drive `work`"), "{}", e.message);
            assert!(e.message.contains("keeps both versions"), "{}", e.message);
        }
    }
}
