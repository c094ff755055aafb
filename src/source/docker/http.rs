//! Just enough HTTP/1.1 to follow a log stream: send one `GET`, read the
//! response head, then the body (chunked, sized or until close) straight
//! from the socket in large reads.
//!
//! dockerd flushes every log message as its own HTTP chunk. A general
//! client hands those over one at a time, with a task switch each; reading
//! the socket here in 64 KiB gulps and stripping the chunk framing in place
//! gives the decoder hundreds of messages per read, without copying them.
//!
//! State: the connection, a fixed read buffer, and where the body framing
//! stands. Memory is that buffer, whatever the peer sends.

use std::io;

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Read buffer size; also the longest response head accepted.
const BUFFER: usize = 64 * 1024;

/// A connection to dockerd.
#[derive(Debug)]
pub enum Connection {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Connection {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Connection::Unix(s) => s.write_all(bytes).await,
            Connection::Tcp(s) => s.write_all(bytes).await,
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Unix(s) => s.read(buf).await,
            Connection::Tcp(s) => s.read(buf).await,
        }
    }
}

/// A response whose head has been read; the body follows.
pub struct Response {
    pub status: u16,
    conn: Connection,
    buf: Box<[u8]>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    body: Body,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("buffered", &(self.end - self.start))
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// Where the body framing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Inside a chunk, this many data bytes to go.
    ChunkData(u64),
    /// Reading a chunk-size line (hex digits, maybe `;extensions`).
    ChunkSize {
        size: u64,
        digits: u8,
        in_extension: bool,
    },
    /// The `\r\n` after a chunk's data.
    ChunkLineEnd,
    /// After the last (empty) chunk: trailer lines until an empty one.
    Trailers {
        line_empty: bool,
    },
    Sized(u64),
    UntilClose,
    Done,
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed HTTP response from dockerd: {0}")]
    Malformed(&'static str),
}

impl Response {
    /// Sends `GET path` on `conn` and reads the response head.
    pub async fn get(mut conn: Connection, path: &str) -> Result<Response, HttpError> {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: warden\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await?;
        let mut buf = vec![0u8; BUFFER].into_boxed_slice();
        let mut end = 0;
        let head_end = loop {
            if let Some(at) = memmem::find(&buf[..end], b"\r\n\r\n") {
                break at + 4;
            }
            if end == buf.len() {
                return Err(HttpError::Malformed("response head longer than 64 KiB"));
            }
            let read = conn.read(&mut buf[end..]).await?;
            if read == 0 {
                return Err(HttpError::Malformed("connection closed before the response head ended"));
            }
            end += read;
        };
        let (status, body) = parse_head(&buf[..head_end])?;
        Ok(Response { status, conn, buf, start: head_end, end, body })
    }

    /// Waits for more body bytes (cancel-safe: nothing is lost when the
    /// future is dropped). Returns `false` once the body has ended.
    pub async fn fill(&mut self) -> Result<bool, HttpError> {
        if self.body == Body::Done {
            return Ok(false);
        }
        if self.start < self.end {
            return Ok(true);
        }
        self.start = 0;
        self.end = 0;
        let read = self.conn.read(&mut self.buf).await?;
        if read == 0 {
            return match self.body {
                Body::UntilClose => {
                    self.body = Body::Done;
                    Ok(false)
                }
                _ => Err(HttpError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "dockerd closed the connection mid-response",
                ))),
            };
        }
        self.end = read;
        Ok(true)
    }

    /// Hands every body byte read so far to `sink`, in order, stripping
    /// the chunk framing.
    pub fn drain(&mut self, sink: &mut impl FnMut(&[u8])) -> Result<(), HttpError> {
        while self.start < self.end {
            let data = &self.buf[self.start..self.end];
            let (used, body) = step(self.body, data, sink)?;
            self.start += used;
            self.body = body;
            if body == Body::Done {
                self.start = self.end;
            }
        }
        Ok(())
    }

    /// Whether the whole body has been read.
    pub fn ended(&self) -> bool {
        self.body == Body::Done
    }

    /// The start of the body, for error messages: at most `max` bytes.
    pub async fn read_to_string(mut self, max: usize) -> String {
        let mut text = Vec::new();
        loop {
            let mut room = max.saturating_sub(text.len());
            let drained = self.drain(&mut |d| {
                let take = d.len().min(room);
                text.extend_from_slice(&d[..take]);
                room -= take;
            });
            if drained.is_err() || text.len() >= max || !matches!(self.fill().await, Ok(true)) {
                break;
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// Reads the status and how the body is framed.
fn parse_head(head: &[u8]) -> Result<(u16, Body), HttpError> {
    let head = std::str::from_utf8(head).map_err(|_| HttpError::Malformed("response head is not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, status) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed("not an HTTP/1 status line"));
    }
    let status = status.parse::<u16>().map_err(|_| HttpError::Malformed("status code is not a number"))?;
    let mut body = Body::UntilClose;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            body = Body::ChunkSize { size: 0, digits: 0, in_extension: false };
        } else if name.eq_ignore_ascii_case("content-length") && !matches!(body, Body::ChunkSize { .. }) {
            let length =
                value.parse::<u64>().map_err(|_| HttpError::Malformed("content-length is not a number"))?;
            body = if length == 0 { Body::Done } else { Body::Sized(length) };
        }
    }
    Ok((status, body))
}

/// Advances the body framing over `data`; returns the bytes used and the
/// new state. Data goes to `sink`.
fn step(body: Body, data: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<(usize, Body), HttpError> {
    Ok(match body {
        Body::ChunkData(remaining) | Body::Sized(remaining) => {
            let take = data.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
            sink(&data[..take]);
            let left = remaining - take as u64;
            let next = match (body, left) {
                (Body::Sized(_), 0) => Body::Done,
                (Body::Sized(_), left) => Body::Sized(left),
                (_, 0) => Body::ChunkLineEnd,
                (_, left) => Body::ChunkData(left),
            };
            (take, next)
        }
        Body::UntilClose => {
            sink(data);
            (data.len(), Body::UntilClose)
        }
        Body::ChunkSize { mut size, mut digits, mut in_extension } => {
            for (i, &b) in data.iter().enumerate() {
                match b {
                    b'\n' if digits == 0 => return Err(HttpError::Malformed("chunk size missing")),
                    b'\n' if size == 0 => return Ok((i + 1, Body::Trailers { line_empty: true })),
                    b'\n' => return Ok((i + 1, Body::ChunkData(size))),
                    b'\r' => {}
                    _ if in_extension => {}
                    b';' => in_extension = true,
                    b' ' | b'\t' => {}
                    _ => {
                        let digit = (b as char)
                            .to_digit(16)
                            .ok_or(HttpError::Malformed("chunk size is not hexadecimal"))?;
                        digits += 1;
                        if digits > 15 {
                            return Err(HttpError::Malformed("chunk size too large"));
                        }
                        size = size * 16 + u64::from(digit);
                    }
                }
            }
            (data.len(), Body::ChunkSize { size, digits, in_extension })
        }
        Body::ChunkLineEnd => {
            // The `\r\n` after a chunk's data.
            for (i, &b) in data.iter().enumerate() {
                match b {
                    b'\r' => {}
                    b'\n' => return Ok((i + 1, Body::ChunkSize { size: 0, digits: 0, in_extension: false })),
                    _ => return Err(HttpError::Malformed("chunk not followed by a line end")),
                }
            }
            (data.len(), Body::ChunkLineEnd)
        }
        Body::Trailers { mut line_empty } => {
            for (i, &b) in data.iter().enumerate() {
                match b {
                    b'\n' if line_empty => return Ok((i + 1, Body::Done)),
                    b'\n' => line_empty = true,
                    b'\r' => {}
                    _ => line_empty = false,
                }
            }
            (data.len(), Body::Trailers { line_empty })
        }
        Body::Done => (data.len(), Body::Done),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `bytes` (a response body with `head`'s framing) fed in
    /// pieces of `piece` bytes.
    fn body(head: &str, bytes: &[u8], piece: usize) -> Result<(Vec<u8>, bool), HttpError> {
        let (_, mut state) = parse_head(head.as_bytes())?;
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            let mut at = 0;
            while at < chunk.len() {
                let (used, next) = step(state, &chunk[at..], &mut |d| out.extend_from_slice(d))?;
                at += used;
                state = next;
                if state == Body::Done {
                    break;
                }
            }
        }
        Ok((out, state == Body::Done))
    }

    const CHUNKED: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn reads_chunked_bodies_however_they_are_cut() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n";
        for piece in 1..=wire.len() {
            let (data, done) = body(CHUNKED, wire, piece).unwrap();
            assert_eq!(data, b"hello 0123456789", "pieces of {piece}");
            assert!(done, "pieces of {piece}");
        }
        let (data, done) = body(CHUNKED, b"3\r\nabc\r\n0\r\n\r\n", 64).unwrap();
        assert_eq!((data.as_slice(), done), (&b"abc"[..], true));
        let (data, done) = body(CHUNKED, b"3\r\nabc\r\n4\r\nde", 64).unwrap();
        assert_eq!((data.as_slice(), done), (&b"abcde"[..], false));
    }

    #[test]
    fn reads_sized_and_unsized_bodies() {
        let head = "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse_head(head.as_bytes()).unwrap().0, 404);
        assert_eq!(body(head, b"hello, and more", 3).unwrap(), (b"hello".to_vec(), true));
        let head = "HTTP/1.0 200 OK\r\n\r\n";
        assert_eq!(body(head, b"all of it", 2).unwrap(), (b"all of it".to_vec(), false));
        let head = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_head(head.as_bytes()).unwrap().1, Body::Done);
    }

    #[test]
    fn rejects_what_is_not_http() {
        for head in [
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        ] {
            assert!(parse_head(head.as_bytes()).is_err(), "{head:?}");
        }
        for wire in [&b"zz\r\n"[..], b"\r\n", b"3\r\nabcX", b"fffffffffffffffff\r\n"] {
            assert!(body(CHUNKED, wire, 64).is_err(), "{wire:?}");
        }
    }
}
