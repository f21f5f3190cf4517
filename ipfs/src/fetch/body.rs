//! Reading a response body on the fetch's blocking thread, with the rate and size guards.
//!
//! An async task on the runtime pumps the body: it counts the bytes into the attempt's [`Rate`]
//! (consecutive windows of `rate_grace`; a window with fewer than `min_rate × rate_grace` bytes,
//! silence included, caught by a deadline at the window's end, fails with
//! [`AttemptError::TooSlow`]), stops past `limit`
//! bytes ([`AttemptError::EndlessData`]), and hands the data over in pieces of at least
//! [`HANDOFF`] bytes through a small bounded channel, so the blocking reader wakes up once per
//! piece rather than once per network read. A piece is the list of the network reads' buffers
//! as they came (not copied into one buffer). Memory: at most `CHANNEL_PIECES + 1` pieces.
//! The pump ends the channel with an explicit end of body (or the failure); a channel that
//! closes without one (the pump panicked, or its runtime went away) is an error for the reader
//! ([`BodyFailure::Lost`]), never taken for the end of the body.
//!
//! One [`Rate`] serves every request of an attempt at a gateway: its windows run across the
//! requests, and [`Rate::judge`] also judges the wait for a response's headers where the attempt
//! asks for it (each raw block request: a gateway delaying every response just under
//! `response_timeout` cannot keep that time out of every window).
//!
//! The windows are measured in the gateway's time only: while the fetch's thread is inside the
//! destination (a caller's sink waiting on its writer, a file write; [`SinkTime`]) the window's
//! clock stands still. A slow destination makes the fetch slower (the pump stops reading once
//! its channel is full), never the gateway fail; a gateway silent or slow while the destination
//! is idle is judged as before.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::AttemptError;
use super::options::window_bytes;

/// Bytes gathered before the pump hands a piece to the reader.
const HANDOFF: usize = 256 * 1024;
/// Pieces queued between the pump and the reader.
const CHANNEL_PIECES: usize = 4;

/// A response body as `Read`, failing on slow or endless data; the typed reason is kept in
/// [`BodyReader::take_failure`] (the `io::Error` only carries its text).
pub(crate) struct BodyReader {
    handle: Handle,
    rx: mpsc::Receiver<Handoff>,
    piece: Piece,
    /// Set once the pump's last message was read: the end of the body (`None`), or why the body
    /// failed (its text, returned again by later reads).
    closed: Option<Option<String>>,
    failure: Option<BodyFailure>,
    pump: JoinHandle<()>,
}

/// What the pump hands the reader.
enum Handoff {
    /// The next bytes of the body.
    Piece(Piece),
    /// The body ended, every byte handed over.
    End,
    /// The body failed (after the pieces that arrived before).
    Failed(AttemptError),
}

/// Why a body could not be read to its end.
#[derive(Debug)]
pub(crate) enum BodyFailure {
    /// The gateway's fault (slow, endless, transport): the next gateway is asked.
    Gateway(AttemptError),
    /// The pump stopped without ending the body (it panicked, or the runtime shut down): the
    /// fetch's own failure, not the gateway's, and never the end of the body.
    Lost(String),
}

impl BodyReader {
    /// Start pumping `resp`, at most `limit` bytes; every body byte taken from the network is
    /// added to `received` and to `rate`, the attempt's rate guard.
    pub(crate) fn new(
        handle: &Handle,
        resp: reqwest::Response,
        limit: u64,
        received: Arc<AtomicU64>,
        rate: Arc<Rate>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_PIECES);
        let pump = handle.spawn(pump(resp, tx, limit, received, rate));
        Self::with_pump(handle, rx, pump)
    }

    fn with_pump(handle: &Handle, rx: mpsc::Receiver<Handoff>, pump: JoinHandle<()>) -> Self {
        Self {
            handle: handle.clone(),
            rx,
            piece: Piece::new(),
            closed: None,
            failure: None,
            pump,
        }
    }

    /// Why the last read failed, if it was this reader's guard, the transport, or the pump
    /// lost.
    pub(crate) fn take_failure(&mut self) -> Option<BodyFailure> {
        self.failure.take()
    }

    /// The channel closed with no end of body: why the pump stopped.
    fn lost(&mut self) -> String {
        match self.handle.block_on(&mut self.pump) {
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("the response reader panicked before the end of the body: {text}")
            }
            Err(e) => format!("the response reader stopped before the end of the body: {e}"),
            Ok(()) => "the response reader stopped before the end of the body".to_owned(),
        }
    }

    /// Ends reading with `failure`, whose text later reads return again.
    fn fail(&mut self, failure: BodyFailure) -> std::io::Error {
        let text = match &failure {
            BodyFailure::Gateway(e) => e.to_string(),
            BodyFailure::Lost(why) => why.clone(),
        };
        self.closed = Some(Some(text.clone()));
        self.failure = Some(failure);
        std::io::Error::other(text)
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        // Stop reading the response (closes the connection) when the attempt ends early.
        self.pump.abort();
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.piece.front().is_none_or(Bytes::is_empty) {
            if self.piece.pop_front().is_some() {
                continue;
            }
            match &self.closed {
                Some(None) => return Ok(0),
                Some(Some(text)) => return Err(std::io::Error::other(text.clone())),
                None => {}
            }
            match self.rx.blocking_recv() {
                Some(Handoff::Piece(piece)) => self.piece = piece,
                Some(Handoff::End) => {
                    self.closed = Some(None);
                    return Ok(0);
                }
                Some(Handoff::Failed(e)) => return Err(self.fail(BodyFailure::Gateway(e))),
                None => {
                    let why = self.lost();
                    return Err(self.fail(BodyFailure::Lost(why)));
                }
            }
        }
        let Some(chunk) = self.piece.front_mut() else {
            return Ok(0);
        };
        let n = buf.len().min(chunk.len());
        let src = chunk.split_to(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(&src);
        }
        Ok(n)
    }
}

/// Network reads handed over together, in order.
type Piece = VecDeque<Bytes>;

/// The time the fetch's thread has spent inside its destination (handing verified bytes to a
/// caller's sink, which may block on its writer, or to the output file): the fetch's own side,
/// which the rate guard leaves out of the gateway's windows. Shared by the job (which marks each
/// hand-over, [`SinkTime::enter`]) and the pumps of its responses.
#[derive(Debug, Default)]
pub(crate) struct SinkTime(Mutex<Spent>);

/// [`SinkTime`]'s state.
#[derive(Debug, Default)]
struct Spent {
    /// Time inside the destination, hand-overs that ended.
    total: Duration,
    /// When the hand-over under way began, if one is.
    since: Option<std::time::Instant>,
}

impl SinkTime {
    /// Marks a hand-over to the destination, until the returned guard is dropped.
    pub(crate) fn enter(&self) -> InSink<'_> {
        self.lock().since = Some(std::time::Instant::now());
        InSink(self)
    }

    /// Time spent inside the destination so far (the hand-over under way included), and
    /// whether one is under way.
    fn spent(&self) -> (Duration, bool) {
        let spent = self.lock();
        match spent.since {
            Some(since) => (spent.total + since.elapsed(), true),
            None => (spent.total, false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spent> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A hand-over to the destination under way ([`SinkTime::enter`]); its time is added when it is
/// dropped (also when the destination fails or panics).
pub(crate) struct InSink<'a>(&'a SinkTime);

impl Drop for InSink<'_> {
    fn drop(&mut self) {
        let mut spent = self.0.lock();
        if let Some(since) = spent.since.take() {
            spent.total += since.elapsed();
        }
    }
}

/// The rate guard of one attempt at a gateway: consecutive windows of `grace` over the body
/// bytes of all the attempt's responses (and, where the attempt asks, the waits for their
/// headers: [`Rate::judge`]), each of which must carry `min_rate × grace` bytes. In the gateway's
/// time: a window's clock stands still while the fetch is inside its destination
/// ([`SinkTime`]). Shared by the attempt's requests (a CAR's pump and the raw requests made
/// beside it), hence the lock.
pub(crate) struct Rate {
    min_rate: u64,
    grace: Duration,
    sink: Arc<SinkTime>,
    window: Mutex<Window>,
}

/// The window under way ([`Rate`]).
struct Window {
    start: Instant,
    bytes: u64,
    /// [`SinkTime::spent`] when the window began.
    sink_at_start: Duration,
}

impl Rate {
    /// A guard whose first window starts now; the windows leave out the time `sink` records.
    pub(crate) fn new(min_rate: u64, grace: Duration, sink: Arc<SinkTime>) -> Arc<Self> {
        let sink_at_start = sink.spent().0;
        Arc::new(Self {
            min_rate,
            grace,
            sink,
            window: Mutex::new(Window {
                start: Instant::now(),
                bytes: 0,
                sink_at_start,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long `window` has run in the gateway's time (the destination's time left out), and
    /// whether the fetch is inside the destination now.
    fn ran(&self, window: &Window, now: Instant) -> (Duration, bool) {
        let (sink, busy) = self.sink.spent();
        let in_sink = sink.saturating_sub(window.sink_at_start);
        (
            now.saturating_duration_since(window.start)
                .saturating_sub(in_sink),
            busy,
        )
    }

    /// Counts `bytes` received into the window under way.
    fn add(&self, bytes: u64) {
        let mut window = self.lock();
        window.bytes = window.bytes.saturating_add(bytes);
    }

    /// When to judge the window if nothing arrives: at its end in the gateway's time. While
    /// the destination is busy that end moves away as fast as time passes, so look again after
    /// what is left of the window, at least a quarter of it (never a busy loop of short waits).
    /// `None` when that instant is past what [`Instant`] can hold (the options refuse windows
    /// over an hour, so only a window that could never end): no deadline then, never a panic.
    fn deadline(&self, now: Instant) -> Option<Instant> {
        let (ran, busy) = self.ran(&self.lock(), now);
        let left = self.grace.saturating_sub(ran);
        now.checked_add(if busy { left.max(self.grace / 4) } else { left })
    }

    /// Close the window if it is over; fail if it was too slow.
    fn check(&self, now: Instant) -> Result<(), AttemptError> {
        let mut window = self.lock();
        if self.ran(&window, now).0 < self.grace {
            return Ok(());
        }
        if u128::from(window.bytes) < window_bytes(self.min_rate, self.grace) {
            return Err(AttemptError::TooSlow {
                bytes: window.bytes,
                window: self.grace,
                min_rate: self.min_rate,
            });
        }
        window.start = now;
        window.sink_at_start = self.sink.spent().0;
        window.bytes = 0;
        Ok(())
    }

    /// Waits for `fut` while judging the windows: each window that ends meanwhile must have
    /// carried its bytes (from this attempt's other requests, or before the wait), or the wait
    /// fails with [`AttemptError::TooSlow`]. The time waited is the gateway's.
    pub(crate) async fn judge<F: Future>(&self, fut: F) -> Result<F::Output, AttemptError> {
        let mut fut = std::pin::pin!(fut);
        loop {
            let next = match self.deadline(Instant::now()) {
                Some(deadline) => tokio::time::timeout_at(deadline, fut.as_mut()).await,
                None => Ok(fut.as_mut().await),
            };
            match next {
                Ok(out) => return Ok(out),
                // The window ended with nothing arriving: judge it, then keep waiting.
                Err(_) => self.check(Instant::now())?,
            }
        }
    }
}

/// Read the body, enforce the guards and hand pieces to the reader.
async fn pump(
    mut resp: reqwest::Response,
    tx: mpsc::Sender<Handoff>,
    limit: u64,
    counter: Arc<AtomicU64>,
    rate: Arc<Rate>,
) {
    let mut received = 0u64;
    let mut piece = Piece::new();
    let mut piece_len = 0usize;
    let outcome = loop {
        match rate.judge(resp.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                // A network read is at most hyper's read buffer; counting it before keeping it
                // bounds the body at the limit plus one read, whatever `Content-Length` said.
                received += chunk.len() as u64;
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if received > limit {
                    break Err(AttemptError::EndlessData {
                        limit,
                        read: received,
                    });
                }
                rate.add(chunk.len() as u64);
                if let Err(e) = rate.check(Instant::now()) {
                    break Err(e);
                }
                piece_len += chunk.len();
                piece.push_back(chunk);
                if piece_len >= HANDOFF {
                    piece_len = 0;
                    if tx
                        .send(Handoff::Piece(std::mem::take(&mut piece)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Ok(Ok(None)) => break Ok(()),
            Ok(Err(e)) => break Err(AttemptError::Transport(e)),
            Err(e) => break Err(e),
        }
    };
    // What arrived before an error is still delivered (a resume keeps its verified part).
    if !piece.is_empty() && tx.send(Handoff::Piece(piece)).await.is_err() {
        return;
    }
    let _ = tx
        .send(match outcome {
            Ok(()) => Handoff::End,
            Err(e) => Handoff::Failed(e),
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    /// A pump that hands over a piece and then dies (a panic, as an `Instant` overflow did)
    /// without ending the body: the reader gets the piece, then an error naming the panic, never
    /// an end of body; later reads fail the same way.
    #[test]
    fn a_pump_that_dies_is_an_error_not_the_end_of_the_body() {
        let rt = runtime();
        let (tx, rx) = mpsc::channel(CHANNEL_PIECES);
        let pump = rt.spawn(async move {
            let piece = Piece::from([Bytes::from_static(b"verified prefix")]);
            tx.send(Handoff::Piece(piece)).await.ok();
            panic!("deadline overflow");
        });
        let mut reader = BodyReader::with_pump(rt.handle(), rx, pump);
        let mut got = Vec::new();
        let err = reader
            .read_to_end(&mut got)
            .expect_err("a dead pump is no end");
        assert_eq!(got, b"verified prefix");
        assert!(err.to_string().contains("deadline overflow"), "{err}");
        assert!(
            matches!(reader.take_failure(), Some(BodyFailure::Lost(why)) if why.contains("panicked"))
        );
        assert!(
            reader.read(&mut [0; 8]).is_err(),
            "a later read is no end either"
        );
    }

    /// The end marker, and only it, is the end of the body (read again: still the end).
    #[test]
    fn the_end_marker_ends_the_body() {
        let rt = runtime();
        let (tx, rx) = mpsc::channel(CHANNEL_PIECES);
        let pump = rt.spawn(async move {
            let piece = Piece::from([Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
            tx.send(Handoff::Piece(piece)).await.ok();
            tx.send(Handoff::End).await.ok();
        });
        let mut reader = BodyReader::with_pump(rt.handle(), rx, pump);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abcd");
        assert_eq!(reader.read(&mut [0; 8]).unwrap(), 0);
        assert!(reader.take_failure().is_none());
    }
}
