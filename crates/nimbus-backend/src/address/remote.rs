//! Addresses of stores on other machines: `s3://`, `webdav://`, `webdavs://`
//! and `sftp://`, parsed with the `url` crate (the WHATWG parser the Rust
//! ecosystem shares) so percent-escapes, IPv6 hosts and ports follow the
//! standard rather than our own reading of it.
//!
//! No address carries a secret: a password written into one is refused with
//! a message saying where passwords go instead, because addresses end up in
//! config files, shell history and logs.

use crate::BackendError;
use std::fmt;

/// An S3-compatible bucket (AWS, Backblaze B2, Cloudflare R2, Wasabi,
/// Garage, MinIO, Ceph ...), and the folder (prefix) in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Folder inside the bucket, without leading or trailing `/`; empty for
    /// the whole bucket.
    pub prefix: String,
    /// `http(s)://host[:port]` of a service other than AWS. `None` means
    /// `AWS_ENDPOINT_URL` if set, else AWS itself.
    pub endpoint: Option<String>,
    /// `None` means `AWS_REGION` if set, else `us-east-1`.
    pub region: Option<String>,
    /// `None`: chosen when the store is opened, from the endpoint in use
    /// (see [`S3Location::resolve`]), wherever that endpoint came from.
    pub style: Option<AddressStyle>,
    /// A profile of `~/.aws/credentials` to take the keys from, instead of
    /// `AWS_PROFILE` or `default`.
    pub profile: Option<String>,
}

/// How the bucket is named in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressStyle {
    /// `https://endpoint/bucket/key`: what self-hosted servers (Garage,
    /// MinIO, Ceph) expect. The default whenever an endpoint is in use.
    Path,
    /// `https://bucket.endpoint/key`: what AWS prefers. The default for AWS.
    /// Never with an IP address, which cannot have a bucket put in front.
    VirtualHost,
}

/// How an S3 store is reached once the environment has been consulted:
/// what OpenDAL is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Resolved {
    /// `None`: AWS itself (OpenDAL builds the regional address).
    pub endpoint: Option<String>,
    pub region: String,
    pub style: AddressStyle,
}

impl S3Location {
    /// The endpoint, region and address style to open the store with.
    /// `env` reads an environment variable (a parameter, for tests).
    ///
    /// The endpoint is the address's own, else `AWS_ENDPOINT_URL_S3`, else
    /// `AWS_ENDPOINT_URL` (the variables the AWS tools read). Unless the
    /// address says otherwise, an endpoint gets path style however it was
    /// given: self-hosted servers expect it, AWS accepts it, and
    /// virtual-host style with an IP address builds a host name that does
    /// not exist.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<S3Resolved, BackendError> {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let endpoint = match &self.endpoint {
            Some(e) => Some(e.clone()),
            None => match var("AWS_ENDPOINT_URL_S3")
                .map(|e| ("AWS_ENDPOINT_URL_S3", e))
                .or_else(|| var("AWS_ENDPOINT_URL").map(|e| ("AWS_ENDPOINT_URL", e)))
            {
                Some((name, e)) => Some(check_endpoint_var(name, e.trim())?),
                None => None,
            },
        };
        let region = self
            .region
            .clone()
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let is_ip = endpoint
            .as_deref()
            .and_then(|e| url::Url::parse(e).ok())
            .is_some_and(|u| matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))));
        let style = match self.style {
            Some(AddressStyle::VirtualHost) if is_ip => {
                return Err(BackendError::invalid_config(format!(
                    "the S3 endpoint {} is an IP address, which cannot be used with style=virtual \
                     (the bucket name would go in front of it); remove style=virtual from the \
                     store address",
                    endpoint.as_deref().unwrap_or_default()
                )))
            }
            Some(s) => s,
            None => default_style(endpoint.as_deref()),
        };
        Ok(S3Resolved {
            endpoint,
            region,
            style,
        })
    }
}

/// The style used unless the address names one: path style for any
/// endpoint, wherever it was given, virtual-host style for AWS itself. An
/// explicit style equal to the address's default is not written out, so
/// the address keeps one spelling (it names the saved credentials).
fn default_style(endpoint: Option<&str>) -> AddressStyle {
    match endpoint {
        Some(_) => AddressStyle::Path,
        None => AddressStyle::VirtualHost,
    }
}

/// A folder on a WebDAV server (Nextcloud, ownCloud, a NAS, Apache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebDavLocation {
    /// `https` (`webdavs://`) rather than `http` (`webdav://`).
    pub tls: bool,
    pub host: String,
    pub port: Option<u16>,
    /// The folder's path on the server, starting and ending with `/`.
    pub path: String,
    pub user: Option<String>,
}

impl WebDavLocation {
    /// The server's base address, `http(s)://host[:port]`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        match self.port {
            Some(p) => format!("{scheme}://{}:{p}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }
}

/// A folder on a machine reached by SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpLocation {
    /// `None`: the user of `~/.ssh/config` or the local user name, as `ssh`
    /// would choose.
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The folder: absolute (`/srv/vault`), or relative to the login folder
    /// when written `sftp://host/~/vault` (stored here as `vault`).
    pub path: String,
}

const PASSWORD_IN_URL: &str = "a store address must not contain a password (addresses are kept \
     in settings and shell history); remove it, and give the password when asked, in \
     NIMBUS_STORE_PASSWORD, or save it with `nimbus login`";

pub(super) fn parse_s3(input: &str) -> Result<S3Location, BackendError> {
    let url = parse_url(input)?;
    refuse_credentials(&url, input)?;
    let bucket = url.host_str().unwrap_or_default().to_string();
    if bucket.is_empty() {
        return Err(invalid(input, "it names no bucket; write it as s3://bucket/folder"));
    }
    check_bucket(input, &bucket)?;
    if url.port().is_some() {
        return Err(invalid(
            input,
            "the part after s3:// is the bucket, not a server; give the server as \
             ?endpoint=http://host:port",
        ));
    }
    let prefix = decoded_path(input, url.path())?.trim_matches('/').to_string();
    check_prefix_segments(input, &prefix)?;
    let mut loc = S3Location {
        bucket,
        prefix,
        endpoint: None,
        region: None,
        style: None,
        profile: None,
    };
    let mut style = None;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "endpoint" => loc.endpoint = Some(check_endpoint(input, &v)?),
            "region" if !v.is_empty() => loc.region = Some(v.into_owned()),
            "profile" if !v.is_empty() => loc.profile = Some(v.into_owned()),
            "style" => {
                style = Some(match v.as_ref() {
                    "path" => AddressStyle::Path,
                    "virtual" | "virtual-host" => AddressStyle::VirtualHost,
                    other => {
                        return Err(invalid(
                            input,
                            &format!("style `{other}` is unknown; use style=path or style=virtual"),
                        ))
                    }
                })
            }
            "access_key_id" | "secret_access_key" | "secret" | "password" | "session_token" => {
                return Err(invalid(input, PASSWORD_IN_URL))
            }
            other => {
                return Err(invalid(
                    input,
                    &format!(
                        "`{other}` is not a setting of S3 stores; the settings are endpoint, region, style and profile"
                    ),
                ))
            }
        }
    }
    loc.style = style.filter(|s| *s != default_style(loc.endpoint.as_deref()));
    Ok(loc)
}

pub(super) fn parse_webdav(input: &str, tls: bool) -> Result<WebDavLocation, BackendError> {
    let url = parse_url(input)?;
    refuse_credentials(&url, input)?;
    let host = host_of(&url, input, "webdav://user@server/folder")?;
    if url.query().is_some() {
        return Err(invalid(input, "WebDAV addresses take no settings after `?`"));
    }
    let mut path = decoded_path(input, url.path())?;
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if !path.ends_with('/') {
        path.push('/');
    }
    check_prefix_segments(input, path.trim_matches('/'))?;
    Ok(WebDavLocation {
        tls,
        host,
        port: url.port(),
        path,
        user: user_of(&url, input)?,
    })
}

pub(super) fn parse_sftp(input: &str) -> Result<SftpLocation, BackendError> {
    let url = parse_url(input)?;
    refuse_credentials(&url, input)?;
    let host = host_of(&url, input, "sftp://user@host/path/to/folder")?;
    if url.query().is_some() {
        return Err(invalid(input, "SFTP addresses take no settings after `?`"));
    }
    let raw = decoded_path(input, url.path())?;
    let path = match raw.strip_prefix("/~") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_matches('/').to_string(),
        _ => {
            let p = raw.trim_end_matches('/');
            if p.is_empty() {
                return Err(invalid(
                    input,
                    "it names no folder; write sftp://user@host/path/to/folder (or /~/folder for one in the login folder)",
                ));
            }
            p.to_string()
        }
    };
    check_prefix_segments(input, path.trim_start_matches('/'))?;
    Ok(SftpLocation {
        user: user_of(&url, input)?,
        host,
        port: url.port(),
        path,
    })
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, escape_path(&self.prefix))?;
        // Values are escaped only where the query needs it, so an endpoint
        // stays readable: ?endpoint=http://127.0.0.1:3900.
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(e) = &self.endpoint {
            q.push(("endpoint", e));
        }
        if let Some(r) = &self.region {
            q.push(("region", r));
        }
        if let Some(style) = self.style.filter(|s| *s != default_style(self.endpoint.as_deref())) {
            q.push((
                "style",
                match style {
                    AddressStyle::Path => "path",
                    AddressStyle::VirtualHost => "virtual",
                },
            ));
        }
        if let Some(p) = &self.profile {
            q.push(("profile", p));
        }
        for (i, (k, v)) in q.iter().enumerate() {
            const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
                .add(b' ')
                .add(b'#')
                .add(b'%')
                .add(b'&')
                .add(b'+')
                .add(b'=');
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{k}={}", percent_encoding::utf8_percent_encode(v, SET))?;
        }
        Ok(())
    }
}

impl fmt::Display for WebDavLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "webdavs://" } else { "webdav://" })?;
        write_authority(f, self.user.as_deref(), &self.host, self.port)?;
        f.write_str(&escape_path(&self.path))
    }
}

impl fmt::Display for SftpLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sftp://")?;
        write_authority(f, self.user.as_deref(), &self.host, self.port)?;
        if self.path.starts_with('/') {
            f.write_str(&escape_path(&self.path))
        } else {
            write!(f, "/~/{}", escape_path(&self.path))
        }
    }
}

fn write_authority(f: &mut fmt::Formatter<'_>, user: Option<&str>, host: &str, port: Option<u16>) -> fmt::Result {
    if let Some(u) = user {
        write!(f, "{}@", escape_user(u))?;
    }
    f.write_str(host)?;
    if let Some(p) = port {
        write!(f, ":{p}")?;
    }
    Ok(())
}

/// Escapes what a path cannot hold as written (spaces, `%`, `?`, `#`).
fn escape_path(p: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(p, SET).to_string()
}

fn escape_user(u: &str) -> String {
    percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn parse_url(input: &str) -> Result<url::Url, BackendError> {
    url::Url::parse(input).map_err(|e| invalid(input, &format!("it is not a valid address ({e})")))
}

fn refuse_credentials(url: &url::Url, input: &str) -> Result<(), BackendError> {
    if url.password().is_some() {
        return Err(invalid(input, PASSWORD_IN_URL));
    }
    Ok(())
}

fn host_of(url: &url::Url, input: &str, example: &str) -> Result<String, BackendError> {
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(h.to_string()),
        _ => Err(invalid(input, &format!("it names no server; write it as {example}"))),
    }
}

fn user_of(url: &url::Url, input: &str) -> Result<Option<String>, BackendError> {
    if url.username().is_empty() {
        return Ok(None);
    }
    let user = percent_encoding::percent_decode_str(url.username())
        .decode_utf8()
        .map_err(|_| invalid(input, "the user name is not valid UTF-8"))?;
    Ok(Some(user.into_owned()))
}

fn decoded_path(input: &str, path: &str) -> Result<String, BackendError> {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map(|p| p.into_owned())
        .map_err(|_| invalid(input, "its path is not valid UTF-8 once decoded"))
}

/// The folder is used as a key prefix; the same rules as keys apply, so a
/// vault reads back the same through every service.
fn check_prefix_segments(input: &str, prefix: &str) -> Result<(), BackendError> {
    if prefix.is_empty() {
        return Ok(());
    }
    for seg in prefix.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\\', '\0']) {
            return Err(invalid(
                input,
                "its folder has an empty, `.` or `..` part or a backslash; give a plain folder path",
            ));
        }
    }
    Ok(())
}

/// The S3 rules that matter for a clear early message: 3 to 63 lowercase
/// letters, digits, `.` and `-`.
fn check_bucket(input: &str, bucket: &str) -> Result<(), BackendError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            &format!(
                "`{bucket}` is not a valid bucket name: bucket names have 3 to 63 lowercase \
                 letters, digits, dots and dashes"
            ),
        ))
    }
}

fn check_endpoint(input: &str, endpoint: &str) -> Result<String, BackendError> {
    let url = url::Url::parse(endpoint).map_err(|e| {
        invalid(
            input,
            &format!("its endpoint `{endpoint}` is not an address ({e}); write it as endpoint=https://host:port"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            input,
            &format!("its endpoint `{endpoint}` must start with http:// or https:// and name a server"),
        ));
    }
    if url.password().is_some() || !url.username().is_empty() {
        return Err(invalid(input, PASSWORD_IN_URL));
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}

/// An endpoint from the environment, checked as one in an address is.
fn check_endpoint_var(name: &str, endpoint: &str) -> Result<String, BackendError> {
    // Its value is not repeated: it could hold a user name and password.
    check_endpoint(endpoint, endpoint).map_err(|_| {
        BackendError::invalid_config(format!(
            "{name} is not an S3 endpoint: write it as http://host:port or https://host, without \
             a user name or password, or unset it to use AWS"
        ))
    })
}

fn invalid(input: &str, why: &str) -> BackendError {
    BackendError::invalid_config(format!("cannot use the store address `{}`: {why}", redact(input)))
}

/// The address as it may be shown: any password in it replaced.
fn redact(input: &str) -> String {
    match url::Url::parse(input) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            let mut s = u.to_string();
            // Query values could be secrets too (`secret=`).
            if let Some(i) = s.find('?') {
                s.truncate(i);
            }
            s
        }
        Ok(u)
            if u.query()
                .is_some_and(|q| q.contains("secret") || q.contains("password")) =>
        {
            let mut s = u.to_string();
            if let Some(i) = s.find('?') {
                s.truncate(i);
            }
            s
        }
        _ => input.to_string(),
    }
}
