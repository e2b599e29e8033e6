//! The lean HTTP/1.1 client ([`super::target::ClientKind::Lean`]), the generator's hot path: it only
//! ever sends the GET requests prepared in [`Target::requests`], one at a time per
//! connection (no pipelining), and reads each answer far enough to know its status and
//! where it ends.
//!
//! - The request is written straight from the prepared bytes; the answer is read into one
//!   buffer per connection, reused for every request, and parsed with `httparse` (status
//!   line and headers on the stack). Bodies are skipped, not kept. Nothing is allocated per
//!   request.
//! - Body framing as RFC 9112 §6.3 has it for a response to GET: none for 1xx/204/304,
//!   chunked (sizes read with `httparse::parse_chunk_size`, trailers skipped), else
//!   `Content-Length`, else everything until the server closes.
//! - The connection is closed after `Connection: close`, an HTTP/1.0 answer without
//!   keep-alive, a body delimited by close, any error, or when keep-alive is off.
//! - A kept-alive connection that the server closed while idle (nothing of the answer read
//!   yet) is replaced and the request sent again once, as hyper's `ready()` check does: that
//!   is the end of the connection's life, not a failed request.
//!
//! Each request ends in exactly one [`Outcome`], classified as the hyper client does.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::time::Instant;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::target::Target;
use crate::load::recorder::Outcome;

/// Initial size of a connection's read buffer: an answer's head normally fits many times.
const BUFFER: usize = 16 * 1024;
/// Largest response head accepted (the buffer grows up to this); beyond it, an I/O error.
const MAX_HEAD: usize = 256 * 1024;
/// Most response headers parsed.
const MAX_HEADERS: usize = 64;

/// A connection that is (re)opened on demand.
pub struct Connection<'a> {
    target: &'a Target,
    stream: Option<TcpStream>,
    buffer: Buffer,
    /// The per-request deadline, one timer for the connection's whole life: moving a
    /// registered tokio timer to a later deadline is one atomic update (the wheel sees it
    /// again only when the old deadline comes), where a timer per request is inserted into
    /// and removed from the wheel every time (about a tenth of the client's own instructions
    /// per request, by callgrind).
    timer: Option<Pin<Box<Sleep>>>,
}

/// Why an exchange failed before a complete answer.
enum Failure {
    /// Connecting failed.
    Connect,
    /// The kept-alive connection was closed before any of the answer arrived.
    Stale,
    /// An I/O or protocol error.
    Io,
    /// The head arrived but the body broke off or was malformed; the status is kept.
    Body(u16),
}

/// How an answer's body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl<'a> Connection<'a> {
    /// Not connected yet; the first request connects.
    pub fn new(target: &'a Target) -> Self {
        Self {
            target,
            stream: None,
            buffer: Buffer::new(),
            timer: None,
        }
    }

    /// Sends the GET for path `path` and reads the whole answer by `deadline` (connecting
    /// included when needed).
    pub async fn request(&mut self, path: usize, deadline: Instant) -> Outcome {
        let mut timer = match self.timer.take() {
            Some(mut timer) => {
                timer.as_mut().reset(deadline.into());
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline.into())),
        };
        let answered = tokio::select! {
            biased;
            answered = self.exchange_with_retry(path) => Ok(answered),
            () = timer.as_mut() => Err(()),
        };
        self.timer = Some(timer);
        match answered {
            Ok(Ok((status, reusable))) => {
                if !(reusable && self.target.keep_alive) {
                    self.stream = None;
                }
                if (200..300).contains(&status) {
                    Outcome::Ok
                } else {
                    Outcome::Status(status)
                }
            }
            Ok(Err(failure)) => {
                self.stream = None;
                match failure {
                    Failure::Connect => Outcome::Connect,
                    Failure::Stale | Failure::Io => Outcome::Io,
                    Failure::Body(status) if (200..300).contains(&status) => Outcome::Body,
                    Failure::Body(status) => Outcome::Status(status),
                }
            }
            Err(()) => {
                // The answer may still arrive on this connection; never reuse it.
                self.stream = None;
                Outcome::Timeout
            }
        }
    }

    /// One exchange, repeated once on a fresh connection when a kept-alive one turned out
    /// to be closed.
    async fn exchange_with_retry(&mut self, path: usize) -> Result<(u16, bool), Failure> {
        let reused = self.stream.is_some();
        match self.exchange(path).await {
            Err(Failure::Stale) if reused => {
                self.stream = None;
                self.exchange(path).await
            }
            other => other,
        }
    }

    /// Writes the request and reads the answer: its status, and whether the connection can
    /// carry another request.
    async fn exchange(&mut self, path: usize) -> Result<(u16, bool), Failure> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.target.addr)
                .await
                .map_err(|_| Failure::Connect)?;
            // Small requests must leave at once, not wait for Nagle's algorithm.
            stream.set_nodelay(true).map_err(|_| Failure::Connect)?;
            self.stream = Some(stream);
            self.buffer.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::Connect);
        };
        let buffer = &mut self.buffer;
        if buffer.pending() > 0 {
            // Bytes nobody asked for (the server answered twice?): the stream is out of step.
            return Err(Failure::Io);
        }
        buffer.clear();
        if stream.write_all(&self.target.requests[path]).await.is_err() {
            return Err(Failure::Stale);
        }

        let head = read_head(stream, buffer).await?;
        let status = head.status;
        let mut reusable = head.keep_alive;
        let body = match head.framing {
            Framing::None => Ok(()),
            Framing::Length(length) => buffer.skip(stream, length).await,
            Framing::Chunked => skip_chunked(stream, buffer).await,
            Framing::UntilClose => {
                reusable = false;
                buffer.skip_to_end(stream).await
            }
        };
        body.map_err(|_| Failure::Body(status))?;
        if reusable && buffer.pending() == 0 {
            forget_read_readiness(stream);
        }
        Ok((status, reusable))
    }
}

/// Drops the read readiness tokio keeps from the answer just read, so that the next answer's
/// first read waits for the event loop instead of trying first and failing with `EAGAIN`: one
/// system call less per request, out of about three (write, read, and a share of
/// `epoll_wait`).
///
/// This is sound only because the answer is complete and nothing was left after it: without
/// pipelining, an HTTP/1.1 server sends nothing more until the next request, so the socket
/// holds no unread byte. tokio clears only the readiness it reported (its tick): an event that
/// arrives later still wakes the connection, and a close already seen (`READ_CLOSED`) is never
/// cleared. A server that sends stray bytes anyway is caught by the next exchange (they
/// precede its answer and fail the parse, or are left pending).
fn forget_read_readiness(stream: &TcpStream) {
    let _ = stream.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
    });
}

/// What the head of an answer says.
struct Head {
    status: u16,
    keep_alive: bool,
    framing: Framing,
}

/// Reads and parses the head of the next final answer (1xx interim answers are skipped),
/// leaving the buffer at the start of its body.
async fn read_head(stream: &mut TcpStream, buffer: &mut Buffer) -> Result<Head, Failure> {
    let mut first = true;
    loop {
        // Left uninitialised: initialising 64 empty headers for every answer cost more
        // instructions than parsing the answer's own (callgrind).
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buffer.unread(),
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(length)) => {
                let status = response.code.ok_or(Failure::Io)?;
                let head = interpret(status, response.version, response.headers)?;
                buffer.consume(length);
                if (100..200).contains(&status) {
                    if status == 101 {
                        // Switching protocols: this is no longer HTTP/1.1.
                        return Err(Failure::Io);
                    }
                    continue;
                }
                return Ok(head);
            }
            Ok(httparse::Status::Partial) => {
                let read = buffer
                    .fill(stream)
                    .await
                    .map_err(|_| if first { Failure::Stale } else { Failure::Io })?;
                if read == 0 {
                    return Err(if first { Failure::Stale } else { Failure::Io });
                }
                first = false;
            }
            Err(_) => return Err(Failure::Io),
        }
    }
}

/// Status, keep-alive and framing from a parsed head.
fn interpret(
    status: u16,
    version: Option<u8>,
    headers: &[httparse::Header<'_>],
) -> Result<Head, Failure> {
    let mut keep_alive = version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = content_length(header.value).ok_or(Failure::Io)?;
            // Differing lengths make the framing ambiguous (RFC 9112 §6.3).
            if length.is_some_and(|l| l != value) {
                return Err(Failure::Io);
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the last coding; anything else can only end with the close.
            chunked = last_token(header.value).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                keep_alive = false;
            }
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Some(0) {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        if length == 0 {
            Framing::None
        } else {
            Framing::Length(length)
        }
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Head {
        status,
        keep_alive,
        framing,
    })
}

/// A `Content-Length` value: decimal digits only (RFC 9110 §8.6), surrounding whitespace
/// allowed, no sign; `None` when malformed or beyond `u64`.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |length, &byte| {
        let digit = (byte as char).to_digit(10)?;
        length.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn last_token(value: &[u8]) -> Option<&[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .next_back()
}

/// The body broke off or was malformed.
struct BodyError;

/// Skips a chunked body, trailers included.
async fn skip_chunked(stream: &mut TcpStream, buffer: &mut Buffer) -> Result<(), BodyError> {
    loop {
        let size = loop {
            match httparse::parse_chunk_size(buffer.unread()) {
                Ok(httparse::Status::Complete((used, size))) => {
                    buffer.consume(used);
                    break size;
                }
                Ok(httparse::Status::Partial) => buffer.fill_more(stream).await?,
                Err(_) => return Err(BodyError),
            }
        };
        if size == 0 {
            return skip_trailers(stream, buffer).await;
        }
        buffer.skip(stream, size).await?;
        while buffer.pending() < 2 {
            buffer.fill_more(stream).await?;
        }
        if &buffer.unread()[..2] != b"\r\n" {
            return Err(BodyError);
        }
        buffer.consume(2);
    }
}

/// Skips trailer lines up to and including the empty line that ends a chunked body.
async fn skip_trailers(stream: &mut TcpStream, buffer: &mut Buffer) -> Result<(), BodyError> {
    loop {
        match buffer.unread().windows(2).position(|w| w == b"\r\n") {
            Some(0) => {
                buffer.consume(2);
                return Ok(());
            }
            Some(line) => buffer.consume(line + 2),
            None => buffer.fill_more(stream).await?,
        }
    }
}

/// A connection's read buffer: bytes `start..end` are read but not yet consumed.
struct Buffer {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buffer {
    fn new() -> Self {
        Self {
            bytes: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn pending(&self) -> usize {
        self.end - self.start
    }

    fn unread(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.clear();
        }
    }

    /// Reads more after what is unread, moving it to the front or growing the buffer (up to
    /// [`MAX_HEAD`]) when there is no room; the number of bytes read, 0 at end of stream.
    async fn fill(&mut self, stream: &mut TcpStream) -> std::io::Result<usize> {
        if self.end == self.bytes.len() {
            if self.start > 0 {
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.bytes.len() < MAX_HEAD {
                let mut bigger = vec![0; (self.bytes.len() * 2).min(MAX_HEAD)];
                bigger[..self.end].copy_from_slice(&self.bytes[..self.end]);
                self.bytes = bigger.into_boxed_slice();
            } else {
                return Err(std::io::Error::other("response head too large"));
            }
        }
        let read = stream.read(&mut self.bytes[self.end..]).await?;
        self.end += read;
        Ok(read)
    }

    /// [`Self::fill`] for a body: the end of the stream is an error.
    async fn fill_more(&mut self, stream: &mut TcpStream) -> Result<(), BodyError> {
        match self.fill(stream).await {
            Ok(0) | Err(_) => Err(BodyError),
            Ok(_) => Ok(()),
        }
    }

    /// Consumes `n` bytes of body, reading them as they come and keeping none.
    async fn skip(&mut self, stream: &mut TcpStream, mut n: u64) -> Result<(), BodyError> {
        loop {
            let pending = self.pending() as u64;
            if pending >= n {
                self.consume(n as usize);
                return Ok(());
            }
            n -= pending;
            self.clear();
            self.fill_more(stream).await?;
        }
    }

    /// Consumes everything until the server closes the connection.
    async fn skip_to_end(&mut self, stream: &mut TcpStream) -> Result<(), BodyError> {
        loop {
            self.clear();
            match self.fill(stream).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(BodyError),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::content_length;

    #[test]
    fn content_length_is_plain_decimal() {
        assert_eq!(content_length(b"15"), Some(15));
        assert_eq!(content_length(b" 0 "), Some(0));
        assert_eq!(content_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b" ",
            b"+5",
            b"-1",
            b"1 5",
            b"0x10",
            b"18446744073709551616",
        ] {
            assert_eq!(
                content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
