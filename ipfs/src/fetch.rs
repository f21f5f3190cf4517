//! Verified fetch: a file by root CID from gateways that are not trusted.
//!
//! [`fetch()`] asks each gateway in turn for a CAR of the file (`?format=car&dag-scope=entity`,
//! `Accept: application/vnd.ipld.car; version=1; order=dfs; dups=n`) and streams it through the
//! [`Verifier`]: every block is checked against the link that named it before any of its bytes
//! reach the output. A gateway that does not serve CARs (406/501) is asked block by block
//! (`?format=raw`) in the order the verifier needs them. On any failure (a bad or unexpected
//! block, sizes that lie, a truncated or endless response, a rate below the minimum for longer
//! than the grace period, an HTTP error, an HTML page with status 200) the attempt is recorded
//! as a typed [`GatewayFailure`] and the next gateway continues from the verified position
//! (`entity-bytes=<position>:*`), keeping the bytes already written.
//!
//! Where the bytes go:
//! - [`fetch()`]: to a temporary file beside the output, which is fsynced and renamed into place
//!   only when the whole file was verified; a failed fetch leaves nothing at the output path.
//! - [`fetch_into()`]: to a caller's sink ([`std::io::Write`]), in file order, each byte only
//!   after the block carrying it verified, every byte exactly once across gateway switches (the
//!   next gateway resumes at the count of bytes the sink took). The sink runs on the fetch's
//!   blocking thread; it sees a prefix of the file, and the whole file only when the fetch
//!   returns `Ok`, so a caller must not act on what it received until then. A sink keeps no
//!   bytes the fetch could copy a repeated subtree from, so the blocks of a subtree the DAG
//!   repeats are fetched and verified again (one raw request each, from the gateway in use:
//!   a `dups=n` CAR sends them once).
//!
//! Both share the gateway loop, the verifier and the guards (`dest::Dest`). Memory stays at
//! one block plus one path of DAG nodes whatever the file size.

mod body;
mod car_stream;
mod dest;
mod error;
mod options;
mod output;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cid::Cid;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio::runtime::Handle;

use crate::{Limits, Pushed, Verifier, VerifyError};
use body::{BodyFailure, BodyReader, Rate, SinkTime};
use car_stream::CarSections;
use dest::{Dest, SinkDest};
pub use error::{AttemptError, FetchError, FetchMode, GatewayFailure};
pub use options::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_OVERHEAD_PERCENT, DEFAULT_MIN_RATE, DEFAULT_RATE_GRACE,
    DEFAULT_RESPONSE_TIMEOUT, FetchOptions, FetchProgress, MAX_RATE_GRACE, MIN_OVERHEAD_BYTES,
    MIN_RATE_GRACE, ProgressFn,
};
use output::Output;

/// The `Accept` header of CAR requests: the one variant the streaming verifier can check.
const ACCEPT_CAR: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";
/// The `Accept` header of raw block requests.
const ACCEPT_RAW: &str = "application/vnd.ipld.raw";

/// What a successful fetch did.
#[derive(Debug)]
pub struct FetchReport {
    /// The root CID.
    pub root: Cid,
    /// File bytes written (the expected size).
    pub size: u64,
    /// Where the file now is.
    pub path: PathBuf,
    /// SHA-256 of the file, computed as it was written.
    pub sha256: [u8; 32],
    /// The gateway that delivered the last byte, and how.
    pub completed_by: (url::Url, FetchMode),
    /// Attempts that failed before (their verified bytes were kept).
    pub failures: Vec<GatewayFailure>,
}

/// What a successful [`fetch_into()`] did.
pub struct SinkReport<W> {
    /// The root CID.
    pub root: Cid,
    /// File bytes handed to the sink (the expected size).
    pub size: u64,
    /// The gateway that delivered the last byte, and how.
    pub completed_by: (url::Url, FetchMode),
    /// Attempts that failed before (the sink kept the verified bytes they delivered, and the
    /// next attempt resumed after them).
    pub failures: Vec<GatewayFailure>,
    /// The sink, given back.
    pub sink: W,
}

impl<W> std::fmt::Debug for SinkReport<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkReport")
            .field("root", &self.root)
            .field("size", &self.size)
            .field("completed_by", &self.completed_by)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// Fetch the UnixFS file `root` of `expected_size` bytes from `gateways` into `out_path`,
/// verifying every block (see the module documentation).
pub async fn fetch(
    root: Cid,
    expected_size: u64,
    gateways: &[url::Url],
    out_path: &Path,
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let out_path = out_path.to_path_buf();
    run_job(root, expected_size, gateways, opts, move |job, gateways| {
        // Refuse roots the verifier cannot check before touching the disk.
        job.check_root()?;
        let mut out = Output::create(&out_path, job.opts.durable)?;
        let done = job.run(gateways, &mut out)?;
        let (path, sha256) = out.finish()?;
        Ok(FetchReport {
            root: job.root,
            size: job.expected_size,
            path,
            sha256,
            completed_by: done.by,
            failures: done.failures,
        })
    })
    .await
}

/// Fetch the UnixFS file `root` of `expected_size` bytes from `gateways`, verifying every block
/// as [`fetch()`] does, and hand its bytes to `sink` instead of a file: in order, each only after
/// its block verified, every byte exactly once (see the module documentation). The same guards
/// hold: bytes beyond `expected_size` refused, the minimum rate, the next gateway on any failure
/// resuming from the bytes the sink took.
///
/// `sink` runs on the fetch's blocking thread. It may block: the fetch then waits (reading at
/// most a few pieces ahead), and the time spent inside the sink is not counted against the
/// gateway: the rate guard's window stands still while the sink runs, so a slow writer makes
/// the fetch slower, never a healthy gateway fail with [`AttemptError::TooSlow`] and the next be
/// asked. The guard still judges the gateway's own time: silence or a rate below
/// `opts.min_rate` while the sink is not running fails the attempt as before. A sink error ends
/// the fetch ([`FetchError::Sink`]); so does dropping this future (the fetch
/// stops at its next block and the sink is dropped). The sink is given back on success; on
/// error it is dropped having seen a verified prefix of the file only.
pub async fn fetch_into<W: Write + Send + 'static>(
    root: Cid,
    expected_size: u64,
    gateways: &[url::Url],
    sink: W,
    opts: &FetchOptions,
) -> Result<SinkReport<W>, FetchError> {
    run_job(root, expected_size, gateways, opts, move |job, gateways| {
        job.check_root()?;
        let mut dest = SinkDest::new(sink);
        let done = job.run(gateways, &mut dest)?;
        Ok(SinkReport {
            root: job.root,
            size: job.expected_size,
            completed_by: done.by,
            failures: done.failures,
            sink: dest.sink,
        })
    })
    .await
}

/// Checks the options ([`FetchOptions::validate`]) and the gateways, then runs `body` over a
/// [`Job`] on a blocking thread; the job is told when this future is dropped.
async fn run_job<T, F>(
    root: Cid,
    expected_size: u64,
    gateways: &[url::Url],
    opts: &FetchOptions,
    body: F,
) -> Result<T, FetchError>
where
    T: Send + 'static,
    F: FnOnce(&Job, &[url::Url]) -> Result<T, FetchError> + Send + 'static,
{
    opts.validate()?;
    if gateways.is_empty() {
        return Err(FetchError::NoGateways);
    }
    for g in gateways {
        if !matches!(g.scheme(), "http" | "https") {
            return Err(FetchError::InvalidGateway {
                url: g.to_string(),
                reason: "scheme must be http or https",
            });
        }
        if g.query().is_some() {
            return Err(FetchError::InvalidGateway {
                url: g.to_string(),
                reason: "must not have a query",
            });
        }
    }
    let http = http_client(opts.connect_timeout, None)?;
    let job = Job {
        handle: Handle::current(),
        http,
        root,
        expected_size,
        limits: Limits {
            max_total_size: expected_size,
            ..opts.limits
        },
        opts: opts.clone(),
        received: Arc::new(AtomicU64::new(0)),
        cancelled: Arc::new(AtomicBool::new(false)),
        sink_time: Arc::default(),
    };
    // The job runs on a blocking thread that outlives this future if it is dropped (a timeout
    // around the fetch, a task aborted): the guard tells it so, and the job then stops at its
    // next check instead of renaming the file into place (or feeding a sink) for a caller that
    // is gone.
    let _cancel_on_drop = CancelOnDrop(job.cancelled.clone());
    let gateways = gateways.to_vec();
    tokio::task::spawn_blocking(move || body(&job, &gateways))
        .await
        .map_err(|e| FetchError::Task(e.to_string()))?
}

/// Sets its flag when dropped: with the fetch's future, or once the job has ended (harmless).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The HTTP client for gateway requests with these timeouts (one per process and timeouts:
/// [`crate::http::shared_client`]). Only listed gateways are asked: a redirect is that
/// gateway's failure, not an order to send the device to another host (its LAN, a metadata
/// address) or round a loop.
fn http_client(
    connect_timeout: std::time::Duration,
    timeout: Option<std::time::Duration>,
) -> Result<reqwest::Client, FetchError> {
    crate::http::shared_client(crate::http::ClientSettings {
        connect_timeout: Some(connect_timeout),
        timeout,
        follow_redirects: false,
    })
    .map_err(|e| FetchError::Task(format!("http client: {e}")))
}

/// The file size the root block declares, read from the first gateway that returns a root
/// block matching `root` (`?format=raw`, hash checked).
///
/// For callers that do not know the size in advance. A device knows it from the chain and
/// passes it to [`fetch()`] instead: a size learnt from a gateway only bounds the download by
/// what that gateway claims (at most [`Limits::max_total_size`] of `opts.limits`).
///
/// The root block is read as it streams and refused past [`Limits::max_block_size`] of
/// `opts.limits` ([`AttemptError::BlockTooLarge`]), whatever `Content-Length` says or whether
/// there is one; an error response's body is not read at all.
pub async fn probe_size(
    root: Cid,
    gateways: &[url::Url],
    opts: &FetchOptions,
) -> Result<u64, FetchError> {
    opts.validate()?;
    let http = http_client(
        opts.connect_timeout,
        Some(opts.response_timeout.saturating_add(opts.rate_grace)),
    )?;
    let mut failures = Vec::new();
    for gateway in gateways {
        let url = gateway_url(gateway, &root, "format=raw");
        let received = AtomicU64::new(0);
        let attempt = async {
            let resp = http
                .get(url)
                .header(ACCEPT, ACCEPT_RAW)
                .send()
                .await
                .map_err(AttemptError::Transport)?;
            let status = resp.status().as_u16();
            if status != 200 {
                return Err(AttemptError::HttpStatus { status });
            }
            check_type(&resp, ACCEPT_RAW)?;
            let block = read_block(resp, root, opts.limits.max_block_size, &received).await?;
            let mut verifier = Verifier::new(root, opts.limits).map_err(AttemptError::Verify)?;
            verifier.push(&root, &block).map_err(AttemptError::Verify)?;
            verifier.expected_size().ok_or(AttemptError::Truncated {
                position: 0,
                expected: 0,
            })
        };
        match attempt.await {
            Ok(size) => return Ok(size),
            Err(error) => failures.push(GatewayFailure {
                gateway: gateway.clone(),
                mode: FetchMode::Raw,
                from: 0,
                received: received.load(Ordering::Relaxed),
                error,
            }),
        }
    }
    Err(FetchError::AllGatewaysFailed {
        root,
        expected_size: 0,
        position: 0,
        failures,
    })
}

/// Read a raw block response as it streams, refusing it once it is past `max` bytes (or when its
/// `Content-Length` says it will be); every body byte read is added to `received`.
async fn read_block(
    mut resp: reqwest::Response,
    cid: Cid,
    max: usize,
    received: &AtomicU64,
) -> Result<Vec<u8>, AttemptError> {
    let max = max as u64;
    let too_large = block_limit(&resp, cid, max)?;
    let mut block = Vec::new();
    let mut read = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(AttemptError::Transport)? {
        read += chunk.len() as u64;
        received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if read > max {
            return Err(too_large(read));
        }
        block.extend_from_slice(&chunk);
    }
    Ok(block)
}

/// Refuses a raw block response whose `Content-Length` is above `max` before anything is read;
/// otherwise returns the error to give once `read` bytes have gone past `max` as it streams.
fn block_limit(
    resp: &reqwest::Response,
    cid: Cid,
    max: u64,
) -> Result<impl Fn(u64) -> AttemptError + use<>, AttemptError> {
    let declared = resp.content_length();
    let too_large = move |read| AttemptError::BlockTooLarge {
        cid,
        max,
        read,
        declared,
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(0));
    }
    Ok(too_large)
}

/// One fetch, run on a blocking thread (the CAR reader, the verifier and the file are
/// synchronous; HTTP is driven through the runtime handle).
struct Job {
    handle: Handle,
    http: reqwest::Client,
    root: Cid,
    expected_size: u64,
    limits: Limits,
    opts: FetchOptions,
    /// Body bytes read by the current attempt (reset before each).
    received: Arc<AtomicU64>,
    /// Set when the caller's future was dropped: checked before each gateway, after each
    /// verified block and before the rename, so a dropped fetch leaves nothing (the temporary
    /// file is removed with `Output`) and feeds a sink no further.
    cancelled: Arc<AtomicBool>,
    /// Time spent handing verified bytes on (the sink or the file, and the progress callback):
    /// the fetch's own side, left out of the gateways' rate windows.
    sink_time: Arc<SinkTime>,
}

/// How a fetch ended well.
struct Completed {
    /// The gateway that delivered the last byte, and how.
    by: (url::Url, FetchMode),
    /// Attempts that failed before.
    failures: Vec<GatewayFailure>,
}

/// The outcome of one attempt that did not fail.
enum Attempt {
    /// The file is complete.
    Done,
    /// The gateway does not serve CARs (this status): try it block by block.
    CarUnsupported(u16),
}

impl Job {
    /// Refuses a root the verifier cannot check.
    fn check_root(&self) -> Result<(), FetchError> {
        Verifier::new(self.root, self.limits).map_err(|source| FetchError::Root {
            root: self.root,
            source,
        })?;
        Ok(())
    }

    /// The error to stop with if the caller's future was dropped.
    fn cancelled(&self) -> Option<FetchError> {
        self.cancelled
            .load(Ordering::SeqCst)
            .then(|| FetchError::Task("cancelled: the fetch's caller is gone, nothing kept".into()))
    }

    fn run<D: Dest>(&self, gateways: &[url::Url], out: &mut D) -> Result<Completed, FetchError> {
        let mut failures = Vec::new();
        for gateway in gateways {
            if let Some(e) = self.cancelled() {
                return Err(e);
            }
            let from = out.written();
            self.received.store(0, Ordering::Relaxed);
            // Every byte in but the DAG not finished: what is missing carries no bytes (a
            // zero-size subtree at the end), which no byte range names (`entity-bytes=<size>:*`
            // is outside the file, and `<from>:*` ends at the last byte): block by block.
            let bytes_all_in = |out: &D| out.written() == self.expected_size;
            let failure = |mode, error| GatewayFailure {
                gateway: gateway.clone(),
                mode,
                from,
                received: self.received.load(Ordering::Relaxed),
                error,
            };
            let mut mode = FetchMode::Car;
            let mut result =
                if self.expected_size > 0 && bytes_all_in(out) && self.opts.raw_fallback {
                    mode = FetchMode::Raw;
                    self.attempt_raw(gateway, out)
                } else {
                    self.attempt_car(gateway, out)
                };
            if matches!(result, Ok(Attempt::CarUnsupported(_))) && self.opts.raw_fallback {
                mode = FetchMode::Raw;
                result = self.attempt_raw(gateway, out);
            }
            if mode == FetchMode::Car
                && bytes_all_in(out)
                && self.opts.raw_fallback
                && let Err(Failed::Gateway(error)) = result
            {
                tracing::info!(%gateway, error = %error, "every byte verified, the rest of the DAG block by block");
                failures.push(failure(mode, error));
                mode = FetchMode::Raw;
                result = self.attempt_raw(gateway, out);
            }
            match result {
                Ok(Attempt::Done) => {
                    if let Some(e) = self.cancelled() {
                        return Err(e);
                    }
                    return Ok(Completed {
                        by: (gateway.clone(), mode),
                        failures,
                    });
                }
                Ok(Attempt::CarUnsupported(status)) => {
                    failures.push(failure(mode, AttemptError::HttpStatus { status }));
                }
                Err(Failed::Gateway(error)) => {
                    tracing::warn!(%gateway, from, error = %error, "gateway attempt failed");
                    failures.push(failure(mode, error));
                }
                Err(Failed::Fatal(e)) => return Err(e),
            }
        }
        Err(FetchError::AllGatewaysFailed {
            root: self.root,
            expected_size: self.expected_size,
            position: out.written(),
            failures,
        })
    }

    /// A verifier that resumes at the verified position.
    fn verifier<D: Dest>(&self, out: &mut D) -> Result<Verifier, Failed> {
        let from = out.resume().map_err(Failed::Fatal)?;
        Verifier::with_range(self.root, self.limits, from)
            .map_err(|e| Failed::Gateway(AttemptError::Verify(e)))
    }

    fn url(&self, gateway: &url::Url, cid: &Cid, query: &str) -> url::Url {
        gateway_url(gateway, cid, query)
    }

    /// Send a GET and wait for the headers (bounded by `response_timeout`; with `rate`, the
    /// wait is also the gateway's time in that rate guard's windows, [`Rate::judge`]).
    fn get(
        &self,
        url: url::Url,
        accept: &'static str,
        rate: Option<&Rate>,
    ) -> Result<reqwest::Response, AttemptError> {
        let send = self.http.get(url).header(ACCEPT, accept).send();
        let timed = tokio::time::timeout(self.opts.response_timeout, send);
        let sent = self.handle.block_on(async {
            match rate {
                Some(rate) => rate.judge(timed).await,
                None => Ok(timed.await),
            }
        })?;
        match sent {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(AttemptError::Transport(e)),
            Err(_) => Err(AttemptError::ResponseTimeout(self.opts.response_timeout)),
        }
    }

    /// A rate guard for one attempt, its first window starting now.
    fn rate(&self) -> Arc<Rate> {
        Rate::new(
            self.opts.min_rate,
            self.opts.rate_grace,
            Arc::clone(&self.sink_time),
        )
    }

    fn body(&self, resp: reqwest::Response, limit: u64, rate: &Arc<Rate>) -> BodyReader {
        BodyReader::new(
            &self.handle,
            resp,
            limit,
            Arc::clone(&self.received),
            Arc::clone(rate),
        )
    }

    fn progress(&self, position: u64) {
        if let Some(p) = &self.opts.progress {
            p(FetchProgress {
                position,
                total: self.expected_size,
            });
        }
    }

    /// Push one block the sender says is `cid`, and hand on what it yields.
    fn push<D: Dest>(
        &self,
        verifier: &mut Verifier,
        out: &mut D,
        cid: &Cid,
        block: &[u8],
        dups_allowed: bool,
    ) -> Result<(), Failed> {
        match verifier.push(cid, block) {
            Ok(Pushed::Data(data)) => self.emit(verifier, out, Some(data)),
            Ok(Pushed::Node) => self.emit(verifier, out, None),
            Err(VerifyError::DuplicateBlock { .. }) if dups_allowed => Ok(()),
            Err(e) => Err(AttemptError::Verify(e).into()),
        }
    }

    /// Write what a verified block yielded, and any repeated subtrees that follow it (where the
    /// destination keeps bytes to copy them from).
    fn emit<D: Dest>(
        &self,
        verifier: &mut Verifier,
        out: &mut D,
        pushed: Option<&[u8]>,
    ) -> Result<(), Failed> {
        if let Some(e) = self.cancelled() {
            return Err(Failed::Fatal(e));
        }
        // The root's declared size is known once the root was pushed: check it before any of
        // the root's own bytes (a raw-leaf root) reach the output.
        if verifier
            .expected_size()
            .is_some_and(|s| s != self.expected_size)
        {
            return Err(Failed::Gateway(AttemptError::SizeMismatch {
                expected: self.expected_size,
                declared: verifier.expected_size().unwrap_or_default(),
            }));
        }
        // The destination's time is the fetch's, not the gateway's: the rate windows stand
        // still while it runs (a sink waiting on a slow writer is no gateway's fault).
        let _in_sink = self.sink_time.enter();
        if let Some(data) = pushed {
            out.append(data).map_err(Failed::Fatal)?;
        }
        while out.keeps_bytes()
            && let Some(repeat) = verifier
                .repeat()
                .map_err(|e| Failed::Gateway(AttemptError::Verify(e)))?
        {
            out.append_repeat(repeat).map_err(Failed::Fatal)?;
        }
        self.progress(out.written());
        Ok(())
    }

    fn finished<D: Dest>(&self, verifier: &Verifier, out: &D) -> Result<Attempt, Failed> {
        // The verifier stops at the declared size, which was checked against the expected one.
        if out.written() != self.expected_size {
            return Err(Failed::Gateway(AttemptError::SizeMismatch {
                expected: self.expected_size,
                declared: verifier.position(),
            }));
        }
        Ok(Attempt::Done)
    }

    /// One CAR request from the verified position.
    fn attempt_car<D: Dest>(&self, gateway: &url::Url, out: &mut D) -> Result<Attempt, Failed> {
        let mut verifier = self.verifier(out)?;
        let from = verifier.position();
        let query = if from == 0 {
            "format=car&dag-scope=entity".to_owned()
        } else {
            format!("format=car&dag-scope=entity&entity-bytes={from}:*")
        };
        // The wait for the CAR's headers is bounded by `response_timeout` alone (once per
        // attempt); the rate guard's first window starts with the body.
        let resp = self.get(self.url(gateway, &self.root, &query), ACCEPT_CAR, None)?;
        let status = resp.status().as_u16();
        if matches!(status, 406 | 501) {
            return Ok(Attempt::CarUnsupported(status));
        }
        if status != 200 {
            return Err(AttemptError::HttpStatus { status }.into());
        }
        let dups = check_car_type(&resp)?;
        let limit = self
            .opts
            .car_body_limit(self.expected_size.saturating_sub(from));
        // One rate guard for the CAR and the raw requests made beside it (repeated blocks).
        let rate = self.rate();
        let mut body = self.body(resp, limit, &rate);
        let result = self.stream_car(gateway, &mut verifier, out, &mut body, dups, &rate);
        // The reader's own reason (slow, endless, transport) explains a CAR read error best.
        match (result, body.take_failure()) {
            (Err(Failed::Gateway(AttemptError::Car(_))), Some(reason)) => Err(reason.into()),
            (result, _) => result,
        }
    }

    fn stream_car<D: Dest>(
        &self,
        gateway: &url::Url,
        verifier: &mut Verifier,
        out: &mut D,
        body: &mut BodyReader,
        dups_allowed: bool,
        rate: &Arc<Rate>,
    ) -> Result<Attempt, Failed> {
        let car_err = |e| Failed::Gateway(AttemptError::Car(e));
        // A section is a CID (at most a few dozen bytes; 256 allowed) and a block.
        let max_section = self.limits.max_block_size as u64 + 256;
        let mut car = CarSections::new(body, max_section).map_err(car_err)?;
        self.emit(verifier, out, None)?;
        let mut block = Vec::new();
        // A subtree this CAR already sent, which a destination keeping no bytes cannot copy:
        // its blocks again. A `dups=n` CAR does not carry them: one raw request each, from this
        // gateway, and the CAR goes on after them. A CAR that may carry duplicates is read first:
        // its next block is pushed if it is the one needed, and the raw requests are made only
        // for the repeated blocks it moved past.
        let repeat_needed = |verifier: &Verifier, out: &D| {
            (!out.keeps_bytes() && verifier.next_is_repeat())
                .then(|| verifier.next_needed().copied())
                .flatten()
        };
        while !verifier.is_done() {
            if !dups_allowed && let Some(cid) = repeat_needed(verifier, out) {
                let block = self.raw_block(gateway, cid, rate)?;
                self.push(verifier, out, &cid, &block, false)?;
                continue;
            }
            let Some(cid) = car.next(&mut block).map_err(car_err)? else {
                // The CAR ended without a repeat it could have carried (`dups=y` may leave it
                // out): by raw request, then the CAR's end is met again.
                if let Some(needed) = repeat_needed(verifier, out) {
                    let repeated = self.raw_block(gateway, needed, rate)?;
                    self.push(verifier, out, &needed, &repeated, false)?;
                    continue;
                }
                return Err(AttemptError::Truncated {
                    position: verifier.position(),
                    expected: self.expected_size,
                }
                .into());
            };
            while let Some(needed) = repeat_needed(verifier, out).filter(|needed| *needed != cid) {
                let repeated = self.raw_block(gateway, needed, rate)?;
                self.push(verifier, out, &needed, &repeated, false)?;
            }
            self.push(verifier, out, &cid, &block, dups_allowed)?;
        }
        self.finished(verifier, out)
    }

    /// One raw block request per block, in the order the verifier needs them. One rate guard
    /// spans the requests, the waits for their headers included: a gateway cannot hold the
    /// fetch below `min_rate` by delaying each response (just under `response_timeout`).
    fn attempt_raw<D: Dest>(&self, gateway: &url::Url, out: &mut D) -> Result<Attempt, Failed> {
        let mut verifier = self.verifier(out)?;
        self.emit(&mut verifier, out, None)?;
        let rate = self.rate();
        while let Some(cid) = verifier.next_needed().copied() {
            let block = self.raw_block(gateway, cid, &rate)?;
            self.push(&mut verifier, out, &cid, &block, false)?;
        }
        self.finished(&verifier, out)
    }

    /// One block from `gateway` (`?format=raw`), unverified (the caller pushes it); the wait
    /// for its headers and its body are judged by the attempt's `rate`.
    fn raw_block(&self, gateway: &url::Url, cid: Cid, rate: &Arc<Rate>) -> Result<Vec<u8>, Failed> {
        let resp = self.get(
            self.url(gateway, &cid, "format=raw"),
            ACCEPT_RAW,
            Some(rate),
        )?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(AttemptError::HttpStatus { status }.into());
        }
        check_type(&resp, ACCEPT_RAW)?;
        // Counted as it streams (the pump stops one network read past the limit); a
        // `Content-Length` above the limit is refused before anything is read.
        let max = self.limits.max_block_size as u64;
        let too_large = block_limit(&resp, cid, max)?;
        let mut body = self.body(resp, max, rate);
        let mut block = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut body, &mut block) {
            return Err(match body.take_failure() {
                Some(BodyFailure::Gateway(AttemptError::EndlessData { read, .. })) => {
                    too_large(read).into()
                }
                Some(reason) => reason.into(),
                None => AttemptError::Car(crate::CarError::Io(e)).into(),
            });
        }
        Ok(block)
    }
}

/// Why an attempt ended without the file.
enum Failed {
    /// This gateway failed: record it and go on to the next.
    Gateway(AttemptError),
    /// The local side failed (disk): stop.
    Fatal(FetchError),
}

impl From<AttemptError> for Failed {
    fn from(e: AttemptError) -> Self {
        Self::Gateway(e)
    }
}

impl From<BodyFailure> for Failed {
    /// A body reader lost (its pump died) is the fetch's failure, not the gateway's: asking the
    /// next gateway would meet the same fault, and a body cut short must never pass as whole.
    fn from(e: BodyFailure) -> Self {
        match e {
            BodyFailure::Gateway(e) => Self::Gateway(e),
            BodyFailure::Lost(why) => Self::Fatal(FetchError::Task(why)),
        }
    }
}

/// `<gateway>/ipfs/<cid>?<query>`, keeping a path prefix the gateway URL may have.
fn gateway_url(gateway: &url::Url, cid: &Cid, query: &str) -> url::Url {
    let mut url = gateway.clone();
    let base = gateway.path().trim_end_matches('/');
    url.set_path(&format!("{base}/ipfs/{cid}"));
    url.set_query(Some(query));
    url
}

/// The raw `Content-Type` of a response ("" when absent).
fn raw_content_type(resp: &reqwest::Response) -> &str {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A media type (lowercase, without parameters) and its parameters.
fn parse_content_type(raw: &str) -> (String, Vec<(String, String)>) {
    let mut parts = raw.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            )
        })
        .collect();
    (media, params)
}

fn check_type(resp: &reqwest::Response, expected: &'static str) -> Result<(), AttemptError> {
    let (media, _) = parse_content_type(raw_content_type(resp));
    if media != expected {
        return Err(wrong_type(resp, expected));
    }
    Ok(())
}

fn wrong_type(resp: &reqwest::Response, expected: &'static str) -> AttemptError {
    AttemptError::WrongContentType {
        got: String::from_utf8_lossy(
            resp.headers()
                .get(CONTENT_TYPE)
                .map(|v| v.as_bytes())
                .unwrap_or_default(),
        )
        .chars()
        .take(100)
        .collect(),
        expected,
    }
}

/// Whether a CAR response's `Content-Type` can be verified as it streams (spec: clients MUST
/// check it before reading): CAR v1, DFS order (or unstated, which DFS verification then
/// enforces). `Some(dups_allowed)`: duplicates may appear with `dups=y`, or unstated (the spec
/// says to ignore them then); `None`: not acceptable.
fn car_type_dups(raw: &str) -> Option<bool> {
    let (media, params) = parse_content_type(raw);
    if media != "application/vnd.ipld.car" {
        return None;
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("version").is_some_and(|v| v != "1") || param("order").is_some_and(|o| o != "dfs") {
        return None;
    }
    Some(param("dups") != Some("n"))
}

fn check_car_type(resp: &reqwest::Response) -> Result<bool, AttemptError> {
    car_type_dups(raw_content_type(resp)).ok_or_else(|| wrong_type(resp, ACCEPT_CAR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_keep_a_path_prefix() {
        let cid: Cid = "bafkqaaa".parse().unwrap();
        let at = |g: &str| gateway_url(&g.parse().unwrap(), &cid, "format=raw").to_string();
        assert_eq!(
            at("http://h:8080"),
            "http://h:8080/ipfs/bafkqaaa?format=raw"
        );
        assert_eq!(at("https://h/gw/"), "https://h/gw/ipfs/bafkqaaa?format=raw");
        assert_eq!(at("https://h/gw"), "https://h/gw/ipfs/bafkqaaa?format=raw");
    }

    #[test]
    fn car_content_types() {
        assert_eq!(
            car_type_dups("application/vnd.ipld.car; version=1; order=dfs; dups=n"),
            Some(false)
        );
        assert_eq!(
            car_type_dups("application/vnd.ipld.car;version=1;order=dfs;dups=y"),
            Some(true)
        );
        assert_eq!(car_type_dups("application/vnd.ipld.car"), Some(true));
        assert_eq!(
            car_type_dups("Application/Vnd.Ipld.Car; version=\"1\""),
            Some(true)
        );
        assert_eq!(car_type_dups("application/vnd.ipld.car; version=2"), None);
        assert_eq!(car_type_dups("application/vnd.ipld.car; order=unk"), None);
        assert_eq!(car_type_dups("text/html; charset=utf-8"), None);
        assert_eq!(car_type_dups(""), None);
    }
}
