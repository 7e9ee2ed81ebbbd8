//! Parsing the store address a person types.

use nimbus_backend::{AddressStyle, BackendErrorKind, StoreUrl};
use std::path::PathBuf;

#[cfg_attr(not(unix), allow(dead_code))]
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
    let err = StoreUrl::parse("HTTPS://example.com").expect_err("not supported");
    assert_eq!(err.kind(), BackendErrorKind::InvalidConfig);
    let text = err.to_string();
    assert!(
        text.starts_with("storage type `https` is not supported yet; use a folder path"),
        "{text}"
    );
    assert!(text.contains("s3://bucket/folder"), "{text}");
}

#[test]
fn s3_addresses() {
    let StoreUrl::S3(l) = parse("s3://my-bucket/team/vault") else {
        panic!("s3")
    };
    assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("my-bucket", "team/vault"));
    assert_eq!((l.endpoint.as_deref(), l.region.as_deref()), (None, None));
    assert_eq!(l.style, None, "chosen when opened, from the endpoint in use");

    let StoreUrl::S3(l) = parse("s3://b01/?endpoint=http://127.0.0.1:3900/&region=garage") else {
        panic!("s3")
    };
    assert_eq!(l.prefix, "");
    assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
    assert_eq!(l.region.as_deref(), Some("garage"));
    assert_eq!(l.style, None, "path style, the default for this endpoint, is not kept");
    let StoreUrl::S3(l) = parse("s3://b01?endpoint=https://s3.example.invalid&style=virtual&profile=work") else {
        panic!("s3")
    };
    assert_eq!(l.style, Some(AddressStyle::VirtualHost));
    assert_eq!(l.profile.as_deref(), Some("work"));

    for (bad, says) in [
        ("s3://", "names no bucket"),
        ("s3://Bad_Bucket/x", "not a valid bucket name"),
        ("s3://bucket:9000/x", "give the server as ?endpoint="),
        ("s3://bucket/a//b", "an empty"),
        ("s3://bucket/x?endpoint=ftp://h", "must start with http://"),
        ("s3://bucket/x?colour=blue", "`colour` is not a setting"),
        ("s3://bucket/x?style=sideways", "style `sideways` is unknown"),
        ("s3://bucket/x?secret_access_key=abc", "must not contain a password"),
        ("s3://key:secret@bucket/x", "must not contain a password"),
    ] {
        let err = StoreUrl::parse(bad).expect_err(bad);
        assert_eq!(err.kind(), BackendErrorKind::InvalidConfig, "{bad}");
        assert!(err.to_string().contains(says), "{bad}: {err}");
        assert!(
            !err.to_string().contains("secret@") && !err.to_string().contains("=abc"),
            "{err}"
        );
    }
}

#[test]
fn webdav_and_sftp_addresses() {
    let StoreUrl::WebDav(w) = parse("webdavs://ann@cloud.example.invalid/remote.php/dav/files/ann/Vault") else {
        panic!("webdav")
    };
    assert!(w.tls);
    assert_eq!(w.user.as_deref(), Some("ann"));
    assert_eq!(w.endpoint(), "https://cloud.example.invalid");
    assert_eq!(w.path, "/remote.php/dav/files/ann/Vault/");
    let StoreUrl::WebDav(w) = parse("webdav://127.0.0.1:8080/dav%20folder") else {
        panic!("webdav")
    };
    assert!(!w.tls);
    assert_eq!(w.endpoint(), "http://127.0.0.1:8080");
    assert_eq!(w.path, "/dav folder/");
    assert_eq!(w.user, None);
    let err = StoreUrl::parse("webdav://ann:hunter2@host/dav").expect_err("password");
    assert!(err.to_string().contains("must not contain a password"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let StoreUrl::Sftp(s) = parse("sftp://me@nas.local:2222/srv/vault/") else {
        panic!("sftp")
    };
    assert_eq!(
        (s.user.as_deref(), s.host.as_str(), s.port, s.path.as_str()),
        (Some("me"), "nas.local", Some(2222), "/srv/vault")
    );
    let StoreUrl::Sftp(s) = parse("sftp://nas/~/Vault") else {
        panic!("sftp")
    };
    assert_eq!((s.user, s.path.as_str()), (None, "Vault"));
    assert!(StoreUrl::parse("sftp://nas").is_err());
    assert!(StoreUrl::parse("sftp://nas/").is_err());
    assert!(StoreUrl::parse("sftp:///srv").is_err());
}

#[test]
fn remote_addresses_read_back() {
    for input in [
        "s3://b01/team/vault",
        "s3://b01/?endpoint=http://127.0.0.1:3900&region=garage",
        "s3://b01/x?endpoint=http://127.0.0.1:3900&style=virtual&profile=p",
        "s3://b01/my%20vault",
        "webdav://ann@127.0.0.1:8080/dav/",
        "webdavs://host/a%20b/",
        "sftp://me@nas:2222/srv/vault",
        "sftp://nas/~/Vault",
    ] {
        let url = parse(input);
        assert_eq!(url.to_string(), input);
        assert_eq!(parse(&url.to_string()), url, "{url}");
        assert!(url.is_remote());
    }
    assert_eq!(parse("s3://b01/x").scheme(), "s3");
    assert_eq!(parse("webdavs://h/x").scheme(), "webdavs");
    assert!(!parse("memory://").is_remote());
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

/// The style and endpoint a store is opened with, given an environment.
fn resolved(input: &str, env: &[(&str, &str)]) -> Result<nimbus_backend::S3Resolved, nimbus_backend::BackendError> {
    let StoreUrl::S3(l) = parse(input) else { panic!("s3") };
    l.resolve(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
}

#[test]
fn s3_self_hosted_endpoints_use_path_style_however_given() {
    let path = |input: &str, env: &[(&str, &str)]| {
        let r = resolved(input, env).unwrap_or_else(|e| panic!("{input} {env:?}: {e}"));
        assert_eq!(r.style, AddressStyle::Path, "{input} {env:?}");
        r
    };
    // The way the AWS tools take it: an IP address must never be given a
    // bucket in front of it.
    let r = path("s3://b01/x", &[("AWS_ENDPOINT_URL", "http://127.0.0.1:3900")]);
    assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
    assert_eq!(r.region, "us-east-1");
    path("s3://b01/x", &[("AWS_ENDPOINT_URL", "http://[::1]:3900/")]);
    let r = path(
        "s3://b01/x",
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_S3", "https://minio.example.org"),
            ("AWS_REGION", "garage"),
        ],
    );
    assert_eq!(
        r.endpoint.as_deref(),
        Some("https://minio.example.org"),
        "the S3-specific variable wins"
    );
    assert_eq!(r.region, "garage");
    // In the address, or as a name rather than an IP address.
    path("s3://b01/x?endpoint=http://127.0.0.1:3900", &[]);
    path("s3://b01/x?endpoint=https://s3.example.org", &[]);
    // The address's own endpoint wins over the environment's.
    let r = path(
        "s3://b01/x?endpoint=http://10.0.0.2:3900",
        &[("AWS_ENDPOINT_URL", "https://s3.eu-west-1.amazonaws.com")],
    );
    assert_eq!(r.endpoint.as_deref(), Some("http://10.0.0.2:3900"));
    // An explicit style=path stays path, AWS or not.
    path("s3://b01/x?style=path", &[]);
}

#[test]
fn s3_aws_keeps_virtual_host_style_and_bad_endpoints_are_explained() {
    let r = resolved("s3://b01/x", &[]).expect("aws");
    assert_eq!((r.endpoint, r.style), (None, AddressStyle::VirtualHost));
    let r = resolved("s3://b01/x?endpoint=https://s3.example.org&style=virtual", &[]).expect("named host");
    assert_eq!(
        r.style,
        AddressStyle::VirtualHost,
        "an explicit style is kept where it can work"
    );

    let e = resolved("s3://b01/x?endpoint=http://127.0.0.1:3900&style=virtual", &[]).expect_err("IP + virtual");
    assert_eq!(e.kind(), BackendErrorKind::InvalidConfig);
    assert!(e.to_string().contains("remove style=virtual"), "{e}");
    let e = resolved("s3://b01/x", &[("AWS_ENDPOINT_URL", "https://me:pw@127.0.0.1:3900")]).expect_err("a password");
    assert!(e.to_string().contains("AWS_ENDPOINT_URL is not an S3 endpoint"), "{e}");
    assert!(!e.to_string().contains("pw"), "the value is not repeated: {e}");
    let e = resolved("s3://b01/x", &[("AWS_ENDPOINT_URL", "127.0.0.1:3900")]).expect_err("no scheme");
    assert!(e.to_string().contains("http://host:port"), "{e}");
}
