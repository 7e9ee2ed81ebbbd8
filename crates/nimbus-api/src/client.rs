//! Where the service listens, reading bounded lines, and a client.

use std::path::PathBuf;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::wire::{decode_response, encode, Body, RequestFrame, MAX_FRAME};
use crate::{ApiError, ErrorCode, Event, Reply, Request};

/// The service's socket: `NIMBUS_SOCKET`, else `nimbus/nimbusd.sock` in the
/// user's runtime folder (`XDG_RUNTIME_DIR`, which only the user can
/// enter), else a folder of the user's own under the temporary folder.
/// On Windows, a named pipe with the user's name in it.
pub fn socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NIMBUS_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    #[cfg(unix)]
    {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
            return PathBuf::from(dir).join("nimbus").join("nimbusd.sock");
        }
        let uid = rustix::process::getuid().as_raw();
        std::env::temp_dir().join(format!("nimbus-{uid}")).join("nimbusd.sock")
    }
    #[cfg(windows)]
    {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
        PathBuf::from(format!(r"\\.\pipe\nimbus-{user}"))
    }
}

/// Refuses a socket, or a folder holding it, that another user owns: a
/// password sent there could reach someone else's program (a folder in
/// the shared temporary folder can be made first by anyone). Symlinks are
/// not followed: a link is judged by its own owner, so another user's link
/// to a folder of ours is refused.
#[cfg(unix)]
fn check_owner(path: &std::path::Path) -> Result<(), ApiError> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::getuid().as_raw();
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    for p in std::iter::once(path).chain(parent) {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if m.uid() != me && m.uid() != 0 {
                return Err(ApiError::new(
                    ErrorCode::NotPermitted,
                    format!(
                        "{} belongs to another user (uid {}), not to you: it is not your Nimbus service. \
                         Remove it, or set NIMBUS_SOCKET to a place of your own",
                        p.display(),
                        m.uid()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a service run by another user. The checks of the path above
/// cannot be enough: between them and `connect` the path can be swapped
/// (one `rename` in the shared temporary folder), so the kernel is asked
/// who listens on the very connection the password would be sent on.
#[cfg(unix)]
fn check_peer(s: &tokio::net::UnixStream, path: &std::path::Path) -> Result<(), ApiError> {
    let me = rustix::process::getuid().as_raw();
    match s.peer_cred() {
        Ok(c) if c.uid() == me => Ok(()),
        Ok(c) => Err(ApiError::new(
            ErrorCode::NotPermitted,
            format!(
                "the program answering at {} runs as another user (uid {}), not as you: it is not \
                 your Nimbus service, and nothing was sent to it. Find out who made it, remove it, \
                 and start your own service (or set NIMBUS_SOCKET to a place of your own)",
                path.display(),
                c.uid()
            ),
        )),
        Err(e) => Err(ApiError::new(
            ErrorCode::NotPermitted,
            format!(
                "cannot tell which user runs the program answering at {} ({e}), so nothing was \
                 sent to it",
                path.display()
            ),
        )),
    }
}

/// One line read with a bound.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Line(Vec<u8>),
    /// Longer than the bound; the rest of it is still unread.
    TooLong,
    Eof,
}

/// Reads one line of at most `max` bytes (newline excluded) without
/// buffering more than that.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Line> {
    let mut out = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if out.is_empty() { Line::Eof } else { Line::Line(out) });
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if out.len() + take > max {
            return Ok(Line::TooLong);
        }
        out.extend_from_slice(&buf[..take]);
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Line::Line(out));
        }
    }
}

type Reader = BufReader<Box<dyn AsyncRead + Unpin + Send>>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// A connection to the service.
pub struct Client {
    reader: Reader,
    writer: Writer,
    next_id: u64,
}

fn not_running(path: &std::path::Path, e: &std::io::Error) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!(
            "the Nimbus service is not running ({}: {e}); start it with `systemctl --user start nimbusd`, \
             or run `nimbusd` in a terminal",
            path.display()
        ),
    )
}

fn io_err(e: std::io::Error) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("the connection to the Nimbus service broke: {e}; is it still running?"),
    )
}

impl Client {
    /// Connects to the service at [`socket_path`].
    pub async fn connect() -> Result<Client, ApiError> {
        Client::connect_to(&socket_path()).await
    }

    pub async fn connect_to(path: &std::path::Path) -> Result<Client, ApiError> {
        #[cfg(unix)]
        {
            check_owner(path)?;
            let s = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| not_running(path, &e))?;
            check_peer(&s, path)?;
            let (r, w) = s.into_split();
            Ok(Client::from_parts(Box::new(r), Box::new(w)))
        }
        #[cfg(windows)]
        {
            let s = tokio::net::windows::named_pipe::ClientOptions::new()
                .open(path)
                .map_err(|e| not_running(path, &e))?;
            let (r, w) = tokio::io::split(s);
            Ok(Client::from_parts(Box::new(r), Box::new(w)))
        }
    }

    /// A client over any stream (tests).
    pub fn from_parts(r: Box<dyn AsyncRead + Unpin + Send>, w: Writer) -> Client {
        Client {
            reader: BufReader::new(r),
            writer: w,
            next_id: 1,
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn call(&mut self, req: Request) -> Result<Reply, ApiError> {
        let id = self.next_id;
        self.next_id += 1;
        // The request's own version, not ours: see `wire::OLDEST_VERSION`.
        let frame = RequestFrame {
            v: req.since(),
            id,
            req,
        };
        self.writer.write_all(&encode(&frame)).await.map_err(io_err)?;
        self.writer.flush().await.map_err(io_err)?;
        loop {
            match self.read_body().await? {
                Some((rid, Body::Ok(r))) if rid == id => return Ok(r),
                Some((rid, Body::Error(e))) if rid == id || rid == 0 => return Err(e),
                // Events or stale answers: not ours.
                Some(_) => continue,
                None => {
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "the Nimbus service closed the connection without answering",
                    ))
                }
            }
        }
    }

    /// The next event of a subscribed connection; `None` when it ends.
    pub async fn next_event(&mut self) -> Result<Option<Event>, ApiError> {
        loop {
            match self.read_body().await? {
                Some((_, Body::Event(e))) => return Ok(Some(e)),
                Some((_, Body::Error(e))) => return Err(e),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    async fn read_body(&mut self) -> Result<Option<(u64, Body)>, ApiError> {
        match read_line(&mut self.reader, MAX_FRAME).await.map_err(io_err)? {
            Line::Eof => Ok(None),
            Line::TooLong => Err(ApiError::new(ErrorCode::TooLarge, "the service's answer is too long")),
            Line::Line(l) => {
                let f = decode_response(&l)?;
                Ok(Some((f.id, f.body)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded() {
        let data: &[u8] = b"short\nthis one is too long\nend";
        let mut r = BufReader::with_capacity(4, data);
        assert_eq!(read_line(&mut r, 8).await.ok(), Some(Line::Line(b"short".to_vec())));
        assert_eq!(read_line(&mut r, 8).await.ok(), Some(Line::TooLong));
        let mut r = BufReader::new(&b"end"[..]);
        assert_eq!(read_line(&mut r, 8).await.ok(), Some(Line::Line(b"end".to_vec())));
        assert_eq!(read_line(&mut r, 8).await.ok(), Some(Line::Eof));
    }
}
