//! Parsing the store address a person types.

use nimbus_backend::{BackendErrorKind, StoreUrl};
use std::path::PathBuf;

fn local(path: &str) -> StoreUrl {
    StoreUrl::LocalFolder(PathBuf::from(path))
}

fn parse(input: &str) -> StoreUrl {
    StoreUrl::parse(input).unwrap_or_else(|e| panic!("`{input}` should parse: {e}"))
}

#[cfg(unix)]
#[test]
fn local_folders() {
    assert_eq!(parse("/srv/vault"), local("/srv/vault"));
    assert_eq!(parse("file:///srv/vault"), local("/srv/vault"));
    assert_eq!(parse("FILE:///srv/vault"), local("/srv/vault"));
    assert_eq!(parse("file://localhost/srv/vault"), local("/srv/vault"));
    assert_eq!(parse("  /srv/my vault \n"), local("/srv/my vault"));
    assert_eq!(parse("/srv/vault/"), local("/srv/vault"));
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(parse("vault"), StoreUrl::LocalFolder(cwd.join("vault")));
    assert_eq!(parse("./a/b"), StoreUrl::LocalFolder(cwd.join("a/b")));
    // Not a scheme: no letters before `://`.
    assert_eq!(parse("/x/1://y"), local("/x/1://y"));
}

#[cfg(unix)]
#[test]
fn home_folder() {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        assert_eq!(
            parse("~/Vault"),
            StoreUrl::LocalFolder(PathBuf::from(&home).join("Vault"))
        );
        assert_eq!(parse("~"), StoreUrl::LocalFolder(PathBuf::from(&home)));
    }
    let err = StoreUrl::parse("~bob/vault").expect_err("other users' homes");
    assert_eq!(err.kind(), BackendErrorKind::InvalidConfig);
}

#[test]
fn memory() {
    assert_eq!(parse("memory://"), StoreUrl::Memory(None));
    assert_eq!(parse("memory://test-1"), StoreUrl::Memory(Some("test-1".into())));
    assert_eq!(parse("Memory://a_b.c/"), StoreUrl::Memory(Some("a_b.c".into())));
    assert!(StoreUrl::parse("memory://a b").is_err());
    assert!(StoreUrl::parse("memory://a/b").is_err());
}

#[test]
fn unsupported_schemes_say_so() {
    for (input, scheme) in [
        ("s3://bucket/vault", "s3"),
        ("webdav://host/dav", "webdav"),
        ("sftp://me@host/srv", "sftp"),
        ("HTTPS://example.com", "https"),
    ] {
        let err = StoreUrl::parse(input).expect_err("not supported");
        assert_eq!(err.kind(), BackendErrorKind::InvalidConfig);
        assert_eq!(
            err.to_string(),
            format!(
                "storage type `{scheme}` is not supported yet; use a local folder path or \
                 file:///path"
            )
        );
    }
}

#[test]
fn bad_file_urls() {
    let err = StoreUrl::parse("file://home/me/vault").expect_err("a host");
    assert_eq!(err.kind(), BackendErrorKind::InvalidConfig);
    assert!(err.to_string().contains("file:///home/me/vault"), "{err}");
    assert!(StoreUrl::parse("file://").is_err());
    let err = StoreUrl::parse("   ").expect_err("empty");
    assert_eq!(err.kind(), BackendErrorKind::InvalidConfig);
}

#[cfg(unix)]
#[test]
fn display_reads_back() {
    for input in ["/srv/vault", "/srv/my vault", "memory://", "memory://t"] {
        let url = parse(input);
        assert_eq!(parse(&url.to_string()), url, "{url}");
    }
    assert_eq!(parse("/srv/vault").to_string(), "file:///srv/vault");
    assert_eq!(parse("/srv/vault").scheme(), "file");
    assert_eq!(
        "memory://x".parse::<StoreUrl>().expect("parse").to_string(),
        "memory://x"
    );
}
