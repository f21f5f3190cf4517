//! Reading a response body on the fetch's blocking thread, with the rate and size guards.
//!
//! The body is pulled chunk by chunk through the runtime handle. Rate is measured over
//! consecutive windows of `rate_grace`: a window with fewer than `min_rate × rate_grace` bytes
//! (including total silence, caught by a deadline at the window's end) fails the attempt with
//! [`AttemptError::TooSlow`]. More than `limit` bytes fails it with [`AttemptError::EndlessData`].

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::time::Instant;

use super::error::AttemptError;

/// A response body as `Read`, failing on slow or endless data; the typed reason is kept in
/// [`BodyReader::take_failure`] (the `io::Error` only carries its text).
pub(crate) struct BodyReader {
    handle: Handle,
    resp: reqwest::Response,
    chunk: Bytes,
    limit: u64,
    received: u64,
    min_rate: u64,
    grace: Duration,
    window_start: Instant,
    window_bytes: u64,
    failure: Option<AttemptError>,
}

impl BodyReader {
    pub(crate) fn new(
        handle: Handle,
        resp: reqwest::Response,
        limit: u64,
        min_rate: u64,
        grace: Duration,
    ) -> Self {
        Self {
            handle,
            resp,
            chunk: Bytes::new(),
            limit,
            received: 0,
            min_rate,
            grace,
            window_start: Instant::now(),
            window_bytes: 0,
            failure: None,
        }
    }

    /// Why the last read failed, if it was this reader's guard or the transport.
    pub(crate) fn take_failure(&mut self) -> Option<AttemptError> {
        self.failure.take()
    }

    fn fail(&mut self, e: AttemptError) -> std::io::Error {
        let io = std::io::Error::other(e.to_string());
        self.failure = Some(e);
        io
    }

    /// Close the window if it is over; fail if it was too slow.
    fn check_window(&mut self, now: Instant) -> Result<(), AttemptError> {
        if now < self.window_start + self.grace {
            return Ok(());
        }
        let needed = (self.min_rate as u128 * self.grace.as_millis()) / 1000;
        if u128::from(self.window_bytes) < needed {
            return Err(AttemptError::TooSlow {
                bytes: self.window_bytes,
                window: self.grace,
                min_rate: self.min_rate,
            });
        }
        self.window_start = now;
        self.window_bytes = 0;
        Ok(())
    }

    /// The next chunk, `None` at the end of the body.
    fn next_chunk(&mut self) -> Result<Option<Bytes>, AttemptError> {
        loop {
            let deadline = self.window_start + self.grace;
            let got = self
                .handle
                .block_on(tokio::time::timeout_at(deadline, self.resp.chunk()));
            match got {
                Ok(Ok(Some(chunk))) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.limit {
                        return Err(AttemptError::EndlessData { limit: self.limit });
                    }
                    self.window_bytes += chunk.len() as u64;
                    self.check_window(Instant::now())?;
                    return Ok(Some(chunk));
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => return Err(AttemptError::Transport(e)),
                // The window ended with nothing more arriving: judge it, then keep waiting.
                Err(_) => self.check_window(Instant::now())?,
            }
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.chunk.is_empty() {
            match self.next_chunk() {
                Ok(Some(chunk)) => self.chunk = chunk,
                Ok(None) => return Ok(0),
                Err(e) => return Err(self.fail(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
