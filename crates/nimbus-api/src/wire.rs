//! Framing: one JSON object per line, in both directions.
//!
//! A request is `{"v":3,"id":7,"req":{"op":"status"}}`; its answer is
//! `{"v":3,"id":7,"body":{"ok":{"kind":"status",...}}}` or
//! `{"v":3,"id":7,"body":{"error":{"code":"no_such_drive","message":"..."}}}`.
//! Events on a subscribed connection are `{"v":3,"id":0,"body":{"event":{...}}}`.
//!
//! [`decode_request`] is what the service runs on every line a client
//! sends, so it must refuse anything at all without panicking (the fuzz
//! target `api_request` holds it to that).

use serde::{Deserialize, Serialize};

use crate::{ApiError, ErrorCode, Event, Reply, Request};

/// The protocol version this crate speaks.
pub const VERSION: u32 = 3;

/// The oldest request version the service still takes: versions 2 and 3
/// only added operations, so a version 1 request means what it meant.
///
/// The service answers in the version of the request (events: of the
/// `subscribe`), so an older client, which refuses answers of a version
/// newer than its own, keeps working with a newer service; and a client
/// sends the version of each request ([`crate::Request::since`]), so a
/// newer client keeps working with an older service for what both have.
pub const OLDEST_VERSION: u32 = 1;

/// The longest line either side accepts, newline excluded. Requests are
/// small; the largest replies (a long snapshot list) stay far below.
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFrame {
    pub v: u32,
    /// Chosen by the client; the answer carries it back.
    pub id: u64,
    pub req: Request,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub v: u32,
    pub id: u64,
    pub body: Body,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    Ok(Reply),
    Error(ApiError),
    Event(Event),
}

/// Just enough of a request to answer it even when the rest is wrong.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    v: Option<serde_json::Value>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// Decodes one request line (without its newline). On error, the id to
/// answer with (0 when the line has none) and why.
pub fn decode_request(line: &[u8]) -> Result<RequestFrame, (u64, ApiError)> {
    if line.len() > MAX_FRAME {
        return Err((
            0,
            ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "the request is {} bytes; the service accepts at most {MAX_FRAME}",
                    line.len()
                ),
            ),
        ));
    }
    let head: Head = serde_json::from_slice(line).map_err(|e| {
        (
            0,
            ApiError::new(ErrorCode::BadRequest, format!("the request is not a JSON object: {e}")),
        )
    })?;
    let id = head.id.as_ref().and_then(|v| v.as_u64()).unwrap_or(0);
    match head.v.as_ref().map(|v| v.as_u64()) {
        None => {
            return Err((
                id,
                ApiError::new(ErrorCode::BadRequest, "the request has no protocol version (`v`)"),
            ))
        }
        Some(Some(v)) if (u64::from(OLDEST_VERSION)..=u64::from(VERSION)).contains(&v) => {}
        Some(v) => {
            let sent = v
                .map(|v| v.to_string())
                .unwrap_or_else(|| "something that is not a number".into());
            return Err((
                id,
                ApiError::new(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "this service speaks protocol version {VERSION} and the client sent {sent}: \
                         update Nimbus so the app, the command line and the service are one version"
                    ),
                ),
            ));
        }
    }
    serde_json::from_slice(line).map_err(|e| {
        (
            id,
            ApiError::new(ErrorCode::BadRequest, format!("the request does not decode: {e}")),
        )
    })
}

/// The version to answer a request line in that did not decode: the
/// line's own when it is one the service speaks, else [`VERSION`].
pub fn answer_version(line: &[u8]) -> u32 {
    serde_json::from_slice::<Head>(line)
        .ok()
        .and_then(|h| h.v)
        .and_then(|v| v.as_u64())
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| (OLDEST_VERSION..=VERSION).contains(v))
        .unwrap_or(VERSION)
}

/// Decodes one answer line.
pub fn decode_response(line: &[u8]) -> Result<ResponseFrame, ApiError> {
    if line.len() > MAX_FRAME {
        return Err(ApiError::new(ErrorCode::TooLarge, "the service's answer is too long"));
    }
    let frame: ResponseFrame = serde_json::from_slice(line).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("the service's answer does not decode: {e}"),
        )
    })?;
    if !(OLDEST_VERSION..=VERSION).contains(&frame.v) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "the service speaks protocol version {} and this program {VERSION}: \
                 update Nimbus so both are one version (then restart the service)",
                frame.v
            ),
        ));
    }
    Ok(frame)
}

/// One line, newline included.
pub fn encode<T: Serialize>(frame: &T) -> Vec<u8> {
    // Our own types always serialise (no maps with non-string keys).
    let mut out = serde_json::to_vec(frame).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Secret, StoreSecrets};

    fn code(line: &[u8]) -> ErrorCode {
        decode_request(line)
            .err()
            .map(|(_, e)| e.code)
            .unwrap_or(ErrorCode::Unknown)
    }

    #[test]
    fn a_request_round_trips() {
        let f = RequestFrame {
            v: VERSION,
            id: 42,
            req: Request::AddDrive(crate::AddDrive {
                name: "work".into(),
                store: "s3://b/p".into(),
                mount: "/home/a/Work".into(),
                password: Secret::new("pw"),
                credentials: Some(StoreSecrets {
                    access_key_id: Some("AK".into()),
                    secret_access_key: Some(Secret::new("SK")),
                    password: None,
                }),
                remember: true,
                settings: Default::default(),
            }),
        };
        let line = encode(&f);
        assert_eq!(line.last(), Some(&b'\n'));
        let back = decode_request(&line[..line.len() - 1])
            .map_err(|e| e.1)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.id, 42);
        match back.req {
            Request::AddDrive(a) => {
                assert_eq!(a.password.expose(), "pw");
                assert_eq!(
                    a.credentials
                        .and_then(|c| c.secret_access_key)
                        .map(|s| s.expose().to_string()),
                    Some("SK".into())
                );
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let r = Request::Unlock {
            drive: "d".into(),
            password: Some(Secret::new("hunter2")),
            remember: false,
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn bad_requests_are_refused_with_a_code() {
        assert_eq!(code(b""), ErrorCode::BadRequest);
        assert_eq!(code(b"not json"), ErrorCode::BadRequest);
        assert_eq!(code(b"[1,2]"), ErrorCode::BadRequest);
        assert_eq!(code(br#"{"id":1,"req":{"op":"status"}}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"v":4,"id":1,"req":{"op":"status"}}"#),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            code(br#"{"v":"1","id":1,"req":{"op":"status"}}"#),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            code(br#"{"v":2,"id":1,"req":{"op":"format_disk"}}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(br#"{"v":2,"id":1,"req":{"op":"status","x":1}}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(br#"{"v":2,"id":1,"req":{"op":"status"},"extra":true}"#),
            ErrorCode::BadRequest
        );
        let big = vec![b' '; MAX_FRAME + 1];
        assert_eq!(code(&big), ErrorCode::TooLarge);
        // The id comes back even when the rest is wrong.
        assert_eq!(decode_request(br#"{"v":9,"id":77}"#).err().map(|e| e.0), Some(77));
    }

    #[test]
    fn version_1_requests_are_still_taken_and_version_2_adds_operations() {
        assert!(decode_request(br#"{"v":1,"id":1,"req":{"op":"status"}}"#).is_ok());
        let f = decode_request(br#"{"v":2,"id":1,"req":{"op":"browse","drive":"d","snapshot":"s"}}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(f.req, Request::Browse { path, .. } if path.is_empty()));
        let f = decode_request(br#"{"v":2,"id":1,"req":{"op":"test_store","store":"/tmp/x"}}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(f.req, Request::TestStore { credentials: None, .. }));
    }

    #[test]
    fn answers_round_trip_and_unknown_error_codes_are_tolerated() {
        let f = ResponseFrame {
            v: VERSION,
            id: 3,
            body: Body::Error(ApiError::new(ErrorCode::NoSuchDrive, "no drive named x")),
        };
        let line = encode(&f);
        let back = decode_response(&line[..line.len() - 1]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(back.body, Body::Error(e) if e.code == ErrorCode::NoSuchDrive));
        let newer = br#"{"v":2,"id":3,"body":{"error":{"code":"from_the_future","message":"m"}}}"#;
        let back = decode_response(newer).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(back.body, Body::Error(e) if e.code == ErrorCode::Unknown));
    }

    #[test]
    fn a_drive_status_from_an_older_service_still_decodes() {
        // As a service before `changes_pending` and `set_aside` answered.
        let older = br#"{"v":2,"id":1,"body":{"ok":{"kind":"status","version":"0.1.0","pid":7,
            "uptime_secs":1,"safe_to_shut_down":true,"drives":[{"name":"w","store":"s3://b/w",
            "mount":"/home/u/W","state":"up_to_date","message":"Up to date","mounted":true,
            "locked":false,"paused":false,"pending_files":0,"pending_bytes":0,"transfers":{
            "uploaded_bytes":0,"downloaded_bytes":0,"uploading_bytes":0,"upload_rate":0,
            "download_rate":0},"cache_bytes":0,"cache_limit_bytes":0,"upload_limit":null,
            "download_limit":null,"last_sync":null,"last_error":null,"idle_secs":0}]}}}"#;
        let older: Vec<u8> = older.iter().copied().filter(|b| *b != b'\n').collect();
        let back = decode_response(&older).unwrap_or_else(|e| panic!("{e}"));
        let Body::Ok(crate::Reply::Status(s)) = back.body else {
            panic!("not a status: {:?}", back.body)
        };
        assert!(!s.drives[0].changes_pending);
        assert!(s.drives[0].set_aside.is_empty());
        assert_eq!(s.drives[0].transfers.requests, crate::RequestCounts::default());
        // As a service before multi-device sync (protocol 2) answered.
        assert_eq!(s.drives[0].sync, crate::SyncStatus::default());
    }

    #[test]
    fn request_counts_round_trip_and_a_newer_kind_is_ignored() {
        let t = crate::Transfers {
            uploaded_bytes: 10,
            requests: crate::RequestCounts {
                list: 1,
                stat: 2,
                get: 3,
                put: 4,
                delete: 5,
            },
            ..Default::default()
        };
        let json = serde_json::to_string(&t).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            json.contains(r#""requests":{"list":1,"stat":2,"get":3,"put":4,"delete":5}"#),
            "{json}"
        );
        let back: crate::Transfers = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, t);
        // A later service may count a kind this one does not know.
        let newer = r#"{"uploaded_bytes":0,"downloaded_bytes":0,"uploading_bytes":0,"upload_rate":0,
            "download_rate":0,"requests":{"list":7,"copy":1}}"#;
        let back: crate::Transfers = serde_json::from_str(newer).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.requests.list, 7);
        assert_eq!(back.requests.get, 0);
    }

    fn round_trip_reply(r: crate::Reply) -> crate::Reply {
        let line = encode(&ResponseFrame {
            v: VERSION,
            id: 5,
            body: Body::Ok(r),
        });
        match decode_response(&line[..line.len() - 1]).map(|f| f.body) {
            Ok(Body::Ok(r)) => r,
            other => panic!("decoded as {other:?}"),
        }
    }

    fn round_trip_event(e: Event) -> Event {
        let line = encode(&ResponseFrame {
            v: VERSION,
            id: 0,
            body: Body::Event(e),
        });
        match decode_response(&line[..line.len() - 1]).map(|f| f.body) {
            Ok(Body::Event(e)) => e,
            other => panic!("decoded as {other:?}"),
        }
    }

    fn round_trip_request(req: Request) -> Request {
        let v = req.since();
        let line = encode(&RequestFrame { v, id: 9, req });
        match decode_request(&line[..line.len() - 1]) {
            Ok(f) => {
                assert_eq!(f.v, v);
                f.req
            }
            Err((_, e)) => panic!("{e}"),
        }
    }

    fn laptop() -> crate::DeviceInfo {
        crate::DeviceInfo {
            id: "0123456789abcdef0123456789abcdef".into(),
            short_id: "0123456".into(),
            name: "laptop".into(),
            this_device: false,
            last_seen: Some(1_765_000_000),
            merged: false,
        }
    }

    #[test]
    fn the_version_3_requests_round_trip_and_say_their_version() {
        match round_trip_request(Request::Devices { drive: "w".into() }) {
            Request::Devices { drive } => assert_eq!(drive, "w"),
            other => panic!("{other:?}"),
        }
        match round_trip_request(Request::RenameDevice {
            drive: "w".into(),
            name: "desk".into(),
        }) {
            Request::RenameDevice { drive, name } => assert_eq!((drive.as_str(), name.as_str()), ("w", "desk")),
            other => panic!("{other:?}"),
        }
        match round_trip_request(Request::Conflicts { drive: "w".into() }) {
            Request::Conflicts { drive } => assert_eq!(drive, "w"),
            other => panic!("{other:?}"),
        }
        for keep in [crate::Keep::Original, crate::Keep::Copy] {
            match round_trip_request(Request::ResolveConflict {
                drive: "w".into(),
                path: "/a (conflict laptop 2026-12-07 14.05 UTC).txt".into(),
                keep,
            }) {
                Request::ResolveConflict { path, keep: k, .. } => {
                    assert_eq!(k, keep);
                    assert!(path.starts_with("/a (conflict"));
                }
                other => panic!("{other:?}"),
            }
        }
        let f =
            decode_request(br#"{"v":3,"id":1,"req":{"op":"resolve_conflict","drive":"w","path":"/c","keep":"copy"}}"#)
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(
            f.req,
            Request::ResolveConflict {
                keep: crate::Keep::Copy,
                ..
            }
        ));
        // Strict, as every request: an unknown choice or field is refused.
        assert_eq!(
            code(br#"{"v":3,"id":1,"req":{"op":"resolve_conflict","drive":"w","path":"/c","keep":"both"}}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(br#"{"v":3,"id":1,"req":{"op":"devices","drive":"w","all":true}}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(Request::Devices { drive: "w".into() }.since(), 3);
        assert_eq!(
            Request::Browse {
                drive: "w".into(),
                snapshot: "s".into(),
                path: String::new()
            }
            .since(),
            2
        );
        assert_eq!(Request::Status { drive: None }.since(), 1);
        assert!(Request::Devices { drive: "w".into() }.since() <= VERSION);
    }

    #[test]
    fn the_version_3_replies_and_events_round_trip() {
        match round_trip_reply(crate::Reply::Devices {
            devices: vec![laptop()],
        }) {
            crate::Reply::Devices { devices } => assert_eq!(devices, vec![laptop()]),
            other => panic!("{other:?}"),
        }
        let c = crate::ConflictInfo {
            copy: "/r (conflict laptop 2026-12-07 14.05 UTC).docx".into(),
            original: "/r.docx".into(),
            device: "laptop".into(),
            time: Some(1_765_115_100),
        };
        match round_trip_reply(crate::Reply::Conflicts {
            conflicts: vec![c.clone()],
        }) {
            crate::Reply::Conflicts { conflicts } => assert_eq!(conflicts, vec![c]),
            other => panic!("{other:?}"),
        }
        let files = crate::ChangeCounts {
            added: 1,
            changed: 2,
            moved: 3,
            deleted: 4,
        };
        assert_eq!(files.total(), 10);
        match round_trip_event(Event::Updated {
            drive: "w".into(),
            device: "laptop".into(),
            device_id: laptop().id,
            files,
            folders: crate::ChangeCounts {
                added: 1,
                ..Default::default()
            },
            paths: vec!["/a.txt".into()],
        }) {
            Event::Updated {
                device,
                files: f,
                folders,
                paths,
                ..
            } => {
                assert_eq!(device, "laptop");
                assert_eq!(f, files);
                assert_eq!(folders.added, 1);
                assert_eq!(paths, vec!["/a.txt".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        match round_trip_event(Event::Conflict {
            drive: "w".into(),
            copy: "/r (conflict laptop 2026-12-07 14.05 UTC).docx".into(),
            original: "/r.docx".into(),
            device: "laptop".into(),
            time: Some(1_765_115_100),
        }) {
            Event::Conflict {
                copy, original, time, ..
            } => {
                assert!(copy.contains("(conflict laptop"));
                assert_eq!(original, "/r.docx");
                assert_eq!(time, Some(1_765_115_100));
            }
            other => panic!("{other:?}"),
        }
        match round_trip_event(Event::DriveState {
            drive: "w".into(),
            state: crate::DriveState::Receiving,
            message: "Receiving changes from laptop".into(),
        }) {
            Event::DriveState { state, .. } => assert_eq!(state, crate::DriveState::Receiving),
            other => panic!("{other:?}"),
        }
        let sync = crate::SyncStatus {
            last_checked: Some(1_765_115_000),
            behind: true,
            merging: false,
            devices: vec![laptop()],
            conflicts: 2,
        };
        let json = serde_json::to_string(&sync).unwrap_or_else(|e| panic!("{e}"));
        let back: crate::SyncStatus = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, sync);
        let e = ApiError::new(ErrorCode::Unsupported, "not yet");
        let json = serde_json::to_string(&e).unwrap_or_else(|e| panic!("{e}"));
        assert!(json.contains(r#""code":"unsupported""#), "{json}");
    }

    #[test]
    fn an_older_client_reads_what_it_knows_of_a_newer_answer() {
        // The minimal event an older service sends, and what a version 3
        // service sends: a client that knows neither event reads `unknown`,
        // and a status without `sync` decodes with an empty one.
        let newer = br#"{"v":2,"id":0,"body":{"event":{"event":"updated","drive":"w","device":"laptop"}}}"#;
        let back = decode_response(newer).unwrap_or_else(|e| panic!("{e}"));
        match back.body {
            Body::Event(Event::Updated {
                files,
                paths,
                device_id,
                ..
            }) => {
                assert_eq!(files, crate::ChangeCounts::default());
                assert!(paths.is_empty() && device_id.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let future = br#"{"v":3,"id":0,"body":{"event":{"event":"merged_elsewhere","drive":"w"}}}"#;
        let back = decode_response(future).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(back.body, Body::Event(Event::Unknown)));
        let future =
            br#"{"v":3,"id":0,"body":{"event":{"event":"drive_state","drive":"w","state":"rebasing","message":"m"}}}"#;
        let back = decode_response(future).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            back.body,
            Body::Event(Event::DriveState {
                state: crate::DriveState::Unknown,
                ..
            })
        ));
        // A device entry from a later service with a field this one lacks.
        let d: crate::DeviceInfo =
            serde_json::from_str(r#"{"id":"ab","short_id":"ab","name":"n","this_device":true,"clock_skew":3}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(d.this_device && d.last_seen.is_none());
        // A version 4 answer is still refused, with words that say why.
        let later = br#"{"v":4,"id":0,"body":{"event":{"event":"unknown_thing"}}}"#;
        assert_eq!(
            decode_response(later).err().map(|e| e.code),
            Some(ErrorCode::UnsupportedVersion)
        );
    }

    #[test]
    fn an_answer_is_in_the_version_of_the_request() {
        assert_eq!(answer_version(br#"{"v":1,"id":1,"req":{"op":"nope"}}"#), 1);
        assert_eq!(answer_version(br#"{"v":2,"id":1}"#), 2);
        assert_eq!(answer_version(br#"{"v":9,"id":1}"#), VERSION);
        assert_eq!(answer_version(br#"{"v":"2"}"#), VERSION);
        assert_eq!(answer_version(b"not json"), VERSION);
    }
}
