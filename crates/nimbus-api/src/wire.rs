//! Framing: one JSON object per line, in both directions.
//!
//! A request is `{"v":2,"id":7,"req":{"op":"status"}}`; its answer is
//! `{"v":2,"id":7,"body":{"ok":{"kind":"status",...}}}` or
//! `{"v":2,"id":7,"body":{"error":{"code":"no_such_drive","message":"..."}}}`.
//! Events on a subscribed connection are `{"v":2,"id":0,"body":{"event":{...}}}`.
//!
//! [`decode_request`] is what the service runs on every line a client
//! sends, so it must refuse anything at all without panicking (the fuzz
//! target `api_request` holds it to that).

use serde::{Deserialize, Serialize};

use crate::{ApiError, ErrorCode, Event, Reply, Request};

/// The protocol version this crate speaks.
pub const VERSION: u32 = 2;

/// The oldest request version the service still takes: version 2 only
/// added operations, so a version 1 request means what it meant.
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
            code(br#"{"v":3,"id":1,"req":{"op":"status"}}"#),
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
}
