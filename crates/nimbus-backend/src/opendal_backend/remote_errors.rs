//! Advice for the errors of stores on other machines: a refused credential,
//! a missing bucket, a wrong region, an unknown SSH host key each get one
//! message that says which setting to fix, instead of the generic one.
//!
//! The kinds stay as the general mapping decided them except where a
//! service reports a permanent problem in a way that looks transient (ssh's
//! "Host key verification failed" is a dropped connection to OpenDAL).

use super::Flavor;
use crate::error::Op;
use crate::{BackendError, BackendErrorKind};

/// `raw` is OpenDAL's own text of the error, which carries the service's
/// error code (`InvalidAccessKeyId`, `NoSuchBucket` ...).
pub(crate) fn explain(flavor: &Flavor, op: Op, description: &str, e: BackendError, raw: &str) -> BackendError {
    match flavor {
        Flavor::Local => e,
        Flavor::S3 { bucket, region } => s3(description, bucket, region, e, raw),
        Flavor::WebDav => webdav(op, description, e, raw),
        Flavor::Sftp => sftp(description, e, raw),
    }
}

fn s3(description: &str, bucket: &str, region: &str, e: BackendError, raw: &str) -> BackendError {
    let code = s3_code(raw);
    match (e.kind(), code.as_deref()) {
        (_, Some("NoSuchBucket")) => {
            let m = format!(
                "the bucket `{bucket}` does not exist ({description}); check the bucket name and \
                 the endpoint, or create the bucket with your provider's console or tools"
            );
            e.reworded(BackendErrorKind::InvalidConfig, m)
        }
        (_, Some(c @ ("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken"))) => {
            let m = format!(
                "{description} refused the credentials ({c}); check the access key ID and the \
                 secret key (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the AWS profile, or \
                 the ones saved with `nimbus login`)"
            );
            e.reworded(BackendErrorKind::PermissionDenied, m)
        }
        (_, Some(c @ ("AuthorizationHeaderMalformed" | "InvalidRegion" | "PermanentRedirect"))) => {
            let m = format!(
                "{description} expects another region than `{region}` ({c}); set the bucket's \
                 region with ?region=... in the store address or AWS_REGION"
            );
            e.reworded(BackendErrorKind::InvalidConfig, m)
        }
        (BackendErrorKind::PermissionDenied, c) => {
            let c = match (c, s3_field(raw, "message")) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                (None, _) => "access denied".to_string(),
            };
            let m = format!(
                "{description} refused access ({c}); check the access key ID and the secret key \
                 (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the AWS profile, or the ones saved \
                 with `nimbus login`), and that the key may read, write, list and delete in this \
                 bucket"
            );
            e.reworded(BackendErrorKind::PermissionDenied, m)
        }
        // OpenDAL's words when the address it built is not a URL (a bucket
        // put in front of an IP address, a stray character in the endpoint).
        _ if raw.contains("request url is invalid") || raw.contains("invalid IPv4 address") => {
            let m = format!(
                "the requests to {description} cannot be addressed: the endpoint and bucket do not \
                 make a valid web address; check the endpoint (http://host:port or https://host, \
                 in ?endpoint= or AWS_ENDPOINT_URL), and do not use style=virtual with an IP \
                 address"
            );
            e.reworded(BackendErrorKind::InvalidConfig, m)
        }
        _ if raw.contains("no valid credential") || raw.contains("credential is missing") => {
            let m = format!(
                "no credentials for {description}: give them when asked, set AWS_ACCESS_KEY_ID \
                 and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or save them with `nimbus login`"
            );
            e.reworded(BackendErrorKind::InvalidConfig, m)
        }
        _ => e,
    }
}

/// `code: "NoSuchBucket"` in OpenDAL's rendering of the S3 error document.
fn s3_code(raw: &str) -> Option<String> {
    s3_field(raw, "code")
}

fn s3_field(raw: &str, field: &str) -> Option<String> {
    let tag = format!("{field}: \"");
    let start = raw.find(&tag)? + tag.len();
    let len = raw[start..].find('"')?;
    Some(raw[start..start + len].to_string()).filter(|c| !c.is_empty())
}

fn webdav(op: Op, description: &str, e: BackendError, raw: &str) -> BackendError {
    // Reading `a/b` where `a` is an object: Apache answers 400, others 409.
    // Either way there is no object under that key.
    let under_an_object = raw.contains("status: 400") || raw.contains("status: 409");
    if under_an_object && matches!(op, Op::Get | Op::Stat) {
        let key = e.key().unwrap_or_default().to_string();
        return BackendError::not_found(key);
    }
    // OpenDAL's WebDAV service leaves 401 as an unexpected error.
    if raw.contains("status: 401") {
        let m = format!(
            "{description} refused the user name or password; check them (NIMBUS_STORE_PASSWORD, \
             or the one saved with `nimbus login`)"
        );
        return e.reworded(BackendErrorKind::PermissionDenied, m);
    }
    if raw.contains("status: 403") || e.kind() == BackendErrorKind::PermissionDenied {
        let m = format!(
            "{description} refused access (403 Forbidden); check that this user may read and \
             write the folder"
        );
        return e.reworded(BackendErrorKind::PermissionDenied, m);
    }
    e
}

fn sftp(description: &str, e: BackendError, raw: &str) -> BackendError {
    let text = format!("{raw} {}", chain(&e));
    if text.contains("Host key verification failed") || text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        let m = format!(
            "the SSH host key of {description} is not known or has changed, so the connection was \
             refused; connect once with `ssh` to check the key and add it to ~/.ssh/known_hosts"
        );
        return e.reworded(BackendErrorKind::InvalidConfig, m);
    }
    if text.contains("Permission denied (") {
        let m = format!(
            "{description} refused the SSH login; check the user name, and that your key is in \
             the server's authorized_keys and loaded (ssh-add) or named in ~/.ssh/config"
        );
        return e.reworded(BackendErrorKind::PermissionDenied, m);
    }
    if text.contains("Could not resolve hostname") {
        let m = format!(
            "the host of {description} is not known (Could not resolve hostname); check the \
             address, and the network"
        );
        return e.reworded(BackendErrorKind::Unavailable, m);
    }
    e
}

/// Every message down the source chain, where ssh's own words are.
fn chain(e: &BackendError) -> String {
    let mut out = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = cur {
        out.push_str(&s.to_string());
        out.push(' ');
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                out.push_str(&inner.to_string());
                out.push(' ');
            }
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_codes_are_found() {
        let raw = r#"PermissionDenied (persistent) at write => S3Error { code: "InvalidAccessKeyId", message: "..." }"#;
        assert_eq!(s3_code(raw).as_deref(), Some("InvalidAccessKeyId"));
        assert_eq!(s3_code("no code here"), None);
        let e = BackendError::permission_denied("x");
        let flavor = Flavor::S3 {
            bucket: "b".into(),
            region: "garage".into(),
        };
        let e = explain(&flavor, Op::Get, "S3 bucket `b`", e, raw);
        assert_eq!(e.kind(), BackendErrorKind::PermissionDenied);
        assert!(
            e.to_string().contains("refused the credentials (InvalidAccessKeyId)"),
            "{e}"
        );
        let e = explain(
            &flavor,
            Op::Get,
            "S3 bucket `b`",
            BackendError::invalid_config("x"),
            r#"S3Error { code: "NoSuchBucket" }"#,
        );
        assert!(e.to_string().starts_with("the bucket `b` does not exist"), "{e}");
    }

    #[test]
    fn an_invalid_request_address_is_explained() {
        let flavor = Flavor::S3 {
            bucket: "b".into(),
            region: "garage".into(),
        };
        let raw = "Unexpected (permanent) at stat, context: { service: s3 } => request url is invalid, \
                   source: invalid IPv4 address";
        let e = explain(&flavor, Op::Stat, "S3 bucket `b`", BackendError::other("x"), raw);
        assert_eq!(e.kind(), BackendErrorKind::InvalidConfig);
        assert!(e.to_string().contains("check the endpoint"), "{e}");
        assert!(!e.to_string().contains("IPv4 address,"), "no library words: {e}");
    }
}
