//! Opening stores on other machines (S3, WebDAV, SFTP) through OpenDAL, with
//! the credentials a caller found for them and one HTTP client set up for
//! flaky networks.
//!
//! Where credentials come from is the caller's business (a prompt, the
//! environment, the OS keyring); this module only takes them. The one
//! exception is what OpenDAL's AWS signer reads by itself when no keys are
//! given: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`,
//! and `AWS_PROFILE` with `~/.aws/credentials`, which is what every S3 tool
//! does. The EC2 instance-metadata lookup is switched off: on a desktop it
//! only adds a second of waiting before "no credentials".

use crate::address::{AddressStyle, S3Location, S3Resolved, SftpLocation, WebDavLocation};
use crate::error::Op;
use crate::opendal_backend::Flavor;
use crate::{BackendError, LimitedBackend, NetLimits, OpendalBackend};
use opendal::{HttpTransporter, OperationContext, Operator};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// An S3 access key and its secret.
pub struct S3Keys {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
}

/// What a store may need to let us in. Never printed: `Debug` shows only
/// which parts are present.
#[derive(Default)]
pub struct StoreCredentials {
    /// For S3. `None`: the standard AWS environment variables and profile.
    pub s3: Option<S3Keys>,
    /// For WebDAV (with the user of the address).
    pub password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for StoreCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCredentials")
            .field("s3", &self.s3.as_ref().map(|k| &k.access_key_id))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// How to reach a store: credentials, and the limits every request to it
/// goes through (shared, so they can be changed while a drive is mounted).
#[derive(Debug, Default)]
pub struct StoreAccess {
    pub credentials: StoreCredentials,
    /// `None`: a fresh set of default limits.
    pub limits: Option<Arc<NetLimits>>,
}

/// Waiting for a TCP (and TLS) connection to be set up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Waiting for the next bytes of an answer: a server that stops answering
/// in the middle is given up on after this, and the request retried.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Objects at least this big are sent to S3 as a multipart upload, in parts
/// of this size sent side by side: a failed part is sent again, not the
/// whole pack, and one pack uses more than one connection.
pub const MULTIPART_CHUNK: usize = 8 << 20;
const MULTIPART_CONCURRENCY: usize = 4;

/// One HTTP client for every HTTP store of this process: it pools
/// connections per server.
fn http_context() -> Result<OperationContext, BackendError> {
    static CLIENT: OnceLock<Result<reqwest::Client, reqwest::Error>> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        // ring is the TLS crypto of rustls that builds with a C compiler
        // alone; installing it fails only when another is already in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("nimbus/", env!("CARGO_PKG_VERSION")))
            .build()
    });
    let client = client.as_ref().map_err(|e| {
        BackendError::other(format!(
            "could not set up the HTTP client ({e}); check the system's TLS certificates (SSL_CERT_FILE, SSL_CERT_DIR)"
        ))
    })?;
    let transport = opendal_http_transport_reqwest::ReqwestTransport::new(client.clone());
    Ok(OperationContext::new().with_http_transport(HttpTransporter::new(transport)))
}

fn limited(b: OpendalBackend, access: &StoreAccess) -> crate::DynBackend {
    let limits = access.limits.clone().unwrap_or_default();
    let retrying = crate::RetryingBackend::new(LimitedBackend::new(b, limits), crate::RetryPolicy::default());
    Arc::new(retrying)
}

fn build(builder: impl opendal::Builder) -> Result<Operator, BackendError> {
    Operator::new(builder).map_err(|e| BackendError::from_opendal(Op::Open, None, e))
}

pub(crate) fn open_s3(loc: &S3Location, access: &StoreAccess) -> Result<crate::DynBackend, BackendError> {
    let mut b = opendal::services::S3::default()
        .bucket(&loc.bucket)
        .root(&format!("/{}", loc.prefix))
        .disable_ec2_metadata();
    let S3Resolved {
        endpoint,
        region,
        style,
    } = loc.resolve(|k| std::env::var(k).ok())?;
    if let Some(e) = &endpoint {
        b = b.endpoint(e);
    }
    b = b.region(&region);
    if style == AddressStyle::VirtualHost {
        b = b.enable_virtual_host_style();
    }
    if let Some(p) = &loc.profile {
        b = b.profile(p);
    }
    if let Some(keys) = &access.credentials.s3 {
        b = b
            .access_key_id(&keys.access_key_id)
            .secret_access_key(&keys.secret_access_key);
    }
    let op = build(b)?.with_context(http_context()?);
    let shown_endpoint = endpoint.unwrap_or_else(|| format!("AWS S3 ({region})"));
    let description = match loc.prefix.as_str() {
        "" => format!("S3 bucket `{}` at {shown_endpoint}", loc.bucket),
        p => format!("folder `{p}` of S3 bucket `{}` at {shown_endpoint}", loc.bucket),
    };
    let flavor = Flavor::S3 {
        bucket: loc.bucket.clone(),
        region,
    };
    let backend =
        OpendalBackend::remote(op, description, flavor).with_multipart(MULTIPART_CHUNK, MULTIPART_CONCURRENCY);
    Ok(limited(backend, access))
}

pub(crate) fn open_webdav(loc: &WebDavLocation, access: &StoreAccess) -> Result<crate::DynBackend, BackendError> {
    let mut b = opendal::services::Webdav::default()
        .endpoint(&loc.endpoint())
        .root(&loc.path);
    if let Some(u) = &loc.user {
        b = b.username(u);
        match &access.credentials.password {
            Some(pw) => b = b.password(pw),
            None => {
                return Err(BackendError::invalid_config(format!(
                    "the WebDAV server {} needs the password of `{u}`: give it when asked, in \
                     NIMBUS_STORE_PASSWORD, or save it with `nimbus login`",
                    loc.endpoint()
                )))
            }
        }
    }
    let op = build(b)?.with_context(http_context()?);
    let description = format!("WebDAV folder {} on {}", loc.path, loc.endpoint());
    let backend = OpendalBackend::remote(op, description, Flavor::WebDav);
    Ok(limited(backend, access))
}

#[cfg(unix)]
pub(crate) fn open_sftp(loc: &SftpLocation, access: &StoreAccess) -> Result<crate::DynBackend, BackendError> {
    let endpoint = match loc.port {
        Some(p) => format!("ssh://{}:{p}", loc.host),
        None => format!("ssh://{}", loc.host),
    };
    let mut b = opendal::services::Sftp::default()
        .endpoint(&endpoint)
        .root(&loc.path)
        // The person's own known_hosts decides: an unknown or changed host
        // key is refused, never added quietly.
        .known_hosts_strategy("strict");
    if let Some(u) = &loc.user {
        b = b.user(u);
    }
    let op = build(b)?;
    let who = loc.user.as_ref().map_or_else(String::new, |u| format!("{u}@"));
    let port = loc.port.map_or_else(String::new, |p| format!(":{p}"));
    let description = format!("SFTP folder {} on {who}{}{port}", loc.path, loc.host);
    let backend = OpendalBackend::remote(op, description, Flavor::Sftp).with_rename_writes();
    Ok(limited(backend, access))
}

#[cfg(not(unix))]
pub(crate) fn open_sftp(_: &SftpLocation, _: &StoreAccess) -> Result<crate::DynBackend, BackendError> {
    Err(BackendError::invalid_config(
        "SFTP stores are not available on this system yet; use S3, WebDAV or a local folder",
    ))
}
