//! Review of the rate guard's pause (commit 71581fd, second engineer): the window stands still
//! while the fetch is inside its sink. Attacks of a gateway on the pause: silence once the sink
//! is idle again, a trickle into a sink (and a progress callback) that block at every call,
//! endless data while the sink blocks; and the guard's settings at their edges (`rate_grace`
//! zero or huge, `min_rate` zero), and whether a gateway answering raw requests slowly (the
//! wait for each response's headers was in no window) holds the device below `min_rate`.
//!
//! No timed assertions: the gateways sleep, the tests assert on outcomes. Where a test must tell
//! "never ends" from "ends", it gives the fetch a bound many rate windows long and asserts it
//! ended (those tests were the reviewer's ignored flaws, each now fixed and asserting the fix).
#![cfg(all(feature = "server", feature = "client"))]

mod net_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use net_support::bad_gateway::{self, Behavior, car};
use net_support::{dfs_blocks, fixture};
use otaledger_ipfs::fetch::{AttemptError, FetchMode, MAX_RATE_GRACE};
use otaledger_ipfs::{Blockstore, Cid, FetchError, FetchOptions, fetch_into, probe_size};

/// 3 full leaves and a partial one under one root.
const SIZE: usize = 3 * 262_144 + 5000;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<u8>>>);

impl Recorder {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sink sleeping `stall` in every write whose number is below `first` (`usize::MAX`: every
/// write), recording what it got.
struct Blocking {
    got: Recorder,
    writes: usize,
    first: usize,
    stall: Duration,
}

impl Blocking {
    fn new(got: &Recorder, first: usize, stall: Duration) -> Self {
        Self {
            got: got.clone(),
            writes: 0,
            first,
            stall,
        }
    }
}

impl std::io::Write for Blocking {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.writes < self.first {
            std::thread::sleep(self.stall);
        }
        self.writes += 1;
        self.got.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_strict_prefix(got: &[u8], file: &[u8], at: &str) {
    assert!(got.len() < file.len(), "{at}: the sink got the whole file");
    assert!(got == &file[..got.len()], "{at}: not the file's bytes");
}

/// The CAR of the fixture as an honest gateway sends it.
fn whole_car(store: &Blockstore, root: &Cid) -> Vec<u8> {
    car(root, &dfs_blocks(store, root))
}

/// The first 600 KB (the root and two leaves, verified and handed on), then silence for an
/// hour.
fn burst_then_silence(body: Vec<u8>) -> Behavior {
    Behavior::SlowAfter {
        body,
        fast: 600_000,
        chunk: 64,
        pause: Duration::from_secs(3600),
    }
}

/// A burst, then silence, into a sink that does not block: the silence is the gateway's time
/// and fails it (the pause never starts: nothing is handed on while the fetch waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_silence_after_a_burst_fails_while_the_sink_is_idle() {
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(burst_then_silence(whole_car(&fx.store, &fx.root))).await;
    let opts = FetchOptions {
        min_rate: 1 << 20,
        rate_grace: Duration::from_millis(200),
        raw_fallback: false,
        ..FetchOptions::default()
    };
    let got = Recorder::default();
    let err = fetch_into(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        got.clone(),
        &opts,
    )
    .await
    .expect_err("a silent gateway must fail");
    let FetchError::AllGatewaysFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(failures[0].error, AttemptError::TooSlow { bytes: 0, .. }),
        "{err:?}"
    );
    assert_strict_prefix(&got.bytes(), &fx.bytes, "idle sink");
}

/// A burst, then silence, into a sink that blocks three rate windows at each of its first two
/// writes: the silence is forgiven only while the sink works through what the burst brought;
/// once the sink is idle again the gateway fails (`TooSlow`, nothing in the window), and an
/// honest second gateway resumes where the sink stopped, every byte once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_silence_is_forgiven_only_while_the_sink_works() {
    let fx = fixture(SIZE);
    let silent = bad_gateway::start(burst_then_silence(whole_car(&fx.store, &fx.root))).await;
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let opts = FetchOptions {
        min_rate: 1 << 20,
        rate_grace: Duration::from_millis(200),
        raw_fallback: false,
        ..FetchOptions::default()
    };
    let got = Recorder::default();
    let report = fetch_into(
        fx.root,
        SIZE as u64,
        &[silent.url.clone(), honest.url.clone()],
        Blocking::new(&got, 2, Duration::from_millis(600)),
        &opts,
    )
    .await
    .unwrap_or_else(|e| panic!("the honest gateway should complete: {e:?}"));
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(
        matches!(
            report.failures[0].error,
            AttemptError::TooSlow { bytes: 0, .. }
        ),
        "{:?}",
        report.failures
    );
    assert!(report.failures[0].from == 0 && report.failures[0].received >= 600_000);
    assert_eq!(report.completed_by, (honest.url.clone(), FetchMode::Car));
    assert!(got.bytes() == fx.bytes, "not the file, or a byte twice");
    assert!(report.sink.writes >= 4);
}

/// A gateway that starts fast then drips (64 bytes every 20 ms, about 3 KiB/s against a minimum
/// of 1 MiB/s), into a sink that blocks at every write and a progress callback that blocks at
/// every verified block (nodes too): the pause never covers the drip's own time, so it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_a_drip_into_a_sink_and_progress_that_always_block_still_fails() {
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(Behavior::SlowAfter {
        body: whole_car(&fx.store, &fx.root),
        fast: 300_000,
        chunk: 64,
        pause: Duration::from_millis(20),
    })
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let opts = FetchOptions {
        min_rate: 1 << 20,
        rate_grace: Duration::from_millis(200),
        raw_fallback: false,
        progress: Some(Arc::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
        })),
        ..FetchOptions::default()
    };
    let got = Recorder::default();
    let err = fetch_into(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        Blocking::new(&got, usize::MAX, Duration::from_millis(400)),
        &opts,
    )
    .await
    .expect_err("a dripping gateway must fail");
    let FetchError::AllGatewaysFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(failures[0].error, AttemptError::TooSlow { .. }),
        "{err:?}"
    );
    assert!(calls.load(Ordering::SeqCst) >= 2, "the callback never ran");
    assert_strict_prefix(&got.bytes(), &fx.bytes, "drip");
}

/// Endless duplicates of a valid leaf (`dups=y`, which the verifier skips) while the sink
/// blocks for longer than a window at every write: the pause stops the clock, not the byte
/// count; the body is still cut at its bound (`EndlessData`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_endless_data_is_cut_at_its_bound_while_the_sink_blocks() {
    let fx = fixture(SIZE);
    let blocks = dfs_blocks(&fx.store, &fx.root);
    let prefix = car(&fx.root, &blocks[..2]);
    let repeat = bad_gateway::section(&blocks[1].0, &blocks[1].1);
    let gw = bad_gateway::start(Behavior::Endless { prefix, repeat }).await;
    let opts = FetchOptions {
        rate_grace: Duration::from_millis(200),
        raw_fallback: false,
        ..FetchOptions::default()
    };
    let got = Recorder::default();
    let err = fetch_into(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        Blocking::new(&got, usize::MAX, Duration::from_millis(500)),
        &opts,
    )
    .await
    .expect_err("endless data must fail");
    let FetchError::AllGatewaysFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    // `FetchOptions::car_body_limit` (crate-private): the remaining bytes plus 25 %, at least
    // 1 MiB.
    let remaining = SIZE as u64;
    let limit = remaining + ((remaining / 100) * opts.max_overhead_percent).max(1 << 20);
    assert!(
        matches!(failures[0].error, AttemptError::EndlessData { limit: l, .. } if l == limit),
        "{err:?}"
    );
    assert_strict_prefix(&got.bytes(), &fx.bytes, "endless");
}

/// Runs `fetch_into` from a gateway that sends a burst then stays silent, with `opts`, giving
/// it `bound` to end at all; `None` if it did not.
async fn silent_fetch(opts: &FetchOptions, bound: Duration) -> Option<FetchError> {
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(burst_then_silence(whole_car(&fx.store, &fx.root))).await;
    let ended = tokio::time::timeout(
        bound,
        fetch_into(
            fx.root,
            SIZE as u64,
            std::slice::from_ref(&gw.url),
            Recorder::default(),
            opts,
        ),
    )
    .await
    .ok()?;
    Some(ended.expect_err("a silent gateway cannot complete"))
}

/// `rate_grace` zero: "the longest silence tolerated" is zero, yet a window of zero needed zero
/// bytes, so every check passed and the pump re-armed a deadline already past (about one wake-up
/// a millisecond): a silent gateway held the fetch forever. Pre-existing (the deadline was
/// `start + grace` before 71581fd too). Fixed: the options are refused before any request
/// (`FetchError::InvalidOptions` naming `rate_grace`), as is any window below 100 ms. The
/// reviewer expected `AllGatewaysFailed`: a setting that cannot bound silence is the caller's
/// error, not a gateway's, so it is refused as such rather than run and blamed on every gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_rate_grace_zero_still_bounds_silence() {
    for rate_grace in [Duration::ZERO, Duration::from_millis(99)] {
        let opts = FetchOptions {
            rate_grace,
            raw_fallback: false,
            ..FetchOptions::default()
        };
        let err = silent_fetch(&opts, Duration::from_secs(10))
            .await
            .expect("rate_grace zero: a silent gateway held the fetch past the bound");
        assert!(
            matches!(
                err,
                FetchError::InvalidOptions {
                    field: "rate_grace",
                    ..
                }
            ),
            "{rate_grace:?}: {err:?}"
        );
    }
    // `probe_size` (whose client timeout adds `rate_grace`) refuses them the same way.
    let opts = FetchOptions {
        rate_grace: Duration::ZERO,
        ..FetchOptions::default()
    };
    let gateway: url::Url = "http://127.0.0.1:9/".parse().unwrap();
    let err = probe_size("bafkqaaa".parse::<Cid>().unwrap(), &[gateway], &opts)
        .await
        .expect_err("rate_grace zero");
    assert!(
        matches!(
            err,
            FetchError::InvalidOptions {
                field: "rate_grace",
                ..
            }
        ),
        "{err:?}"
    );
}

/// `min_rate` zero (`device run --min-rate 0` was accepted): a window needed zero bytes, so the
/// silence bound `rate_grace` documents ("also the longest silence tolerated") was gone and a
/// silent gateway held the device forever; nothing else bounds the fetch. Pre-existing. Fixed:
/// refused before any request (`FetchError::InvalidOptions` naming `min_rate`), as is a
/// `min_rate` asking for less than one byte per window (1 byte/s over 200 ms); `--min-rate` of
/// `device run` and `ipfs get` take `1..`. `InvalidOptions` rather than the reviewer's
/// `AllGatewaysFailed` for the reason given above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_min_rate_zero_still_bounds_silence() {
    for min_rate in [0, 1] {
        let opts = FetchOptions {
            min_rate,
            rate_grace: Duration::from_millis(200),
            raw_fallback: false,
            ..FetchOptions::default()
        };
        let err = silent_fetch(&opts, Duration::from_secs(10))
            .await
            .expect("min_rate zero: a silent gateway held the fetch past 50 windows");
        assert!(
            matches!(
                err,
                FetchError::InvalidOptions {
                    field: "min_rate",
                    ..
                }
            ),
            "{min_rate}: {err:?}"
        );
    }
    // The smallest window that needs a byte is accepted, and silence then fails the gateway.
    let opts = FetchOptions {
        min_rate: 5,
        rate_grace: Duration::from_millis(200),
        raw_fallback: false,
        ..FetchOptions::default()
    };
    let err = silent_fetch(&opts, Duration::from_secs(10))
        .await
        .expect("min_rate of one byte per window: a silent gateway held the fetch");
    let FetchError::AllGatewaysFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(failures[0].error, AttemptError::TooSlow { bytes: 0, .. }),
        "{err:?}"
    );
}

/// A huge `rate_grace` (`Duration::MAX`, "no rate guard"): the pump's deadline `now + grace`
/// overflowed `Instant` and panicked on the runtime; the reader saw the channel close as the end
/// of the body, so an honest gateway failed (a truncated CAR) and the fetch with it.
/// Pre-existing (`start + grace` before 71581fd). Fixed three ways: a `rate_grace` above one
/// hour is refused before any request (`FetchError::InvalidOptions`; the reviewer expected the
/// fetch to complete, but a window longer than any silence worth waiting for is no rate guard,
/// and refusing it is what makes the bound hold); the deadlines are `checked_add` (an instant
/// `Instant` cannot hold is no deadline, never a panic); and a body reader whose pump dies
/// without its end marker fails instead of reporting the end of the body
/// (`fetch::body::tests::a_pump_that_dies_is_an_error_not_the_end_of_the_body`). The longest
/// window accepted lets an honest gateway complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_a_huge_rate_grace_does_not_break_an_honest_fetch() {
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let opts = FetchOptions {
        rate_grace: Duration::MAX,
        ..FetchOptions::default()
    };
    let err = fetch_into(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        Recorder::default(),
        &opts,
    )
    .await
    .expect_err("rate_grace Duration::MAX");
    assert!(
        matches!(
            err,
            FetchError::InvalidOptions {
                field: "rate_grace",
                ..
            }
        ),
        "{err:?}"
    );
    for rate_grace in [MAX_RATE_GRACE, MAX_RATE_GRACE - Duration::from_nanos(1)] {
        let opts = FetchOptions {
            rate_grace,
            ..FetchOptions::default()
        };
        let got = Recorder::default();
        let report = fetch_into(
            fx.root,
            SIZE as u64,
            std::slice::from_ref(&gw.url),
            got.clone(),
            &opts,
        )
        .await
        .unwrap_or_else(|e| {
            panic!("an honest gateway failed with rate_grace {rate_grace:?}: {e:?}")
        });
        assert!(report.failures.is_empty());
        assert!(got.bytes() == fx.bytes);
    }
}

/// A gateway that refuses CARs (406) and answers each raw block request only after `delay`
/// (below `response_timeout`), then at once.
#[derive(Clone)]
struct SlowRaw {
    store: Blockstore,
    delay: Duration,
    requests: Arc<AtomicUsize>,
}

async fn slow_raw(State(gw): State<SlowRaw>, req: Request) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    if query.contains("format=car") {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    let Some(cid) = req
        .uri()
        .path()
        .strip_prefix("/ipfs/")
        .and_then(|c| c.parse::<Cid>().ok())
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    gw.requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(gw.delay).await;
    match gw.store.get(&cid).unwrap() {
        Some(block) => (
            [(header::CONTENT_TYPE, "application/vnd.ipld.raw")],
            Body::from(block),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves `SlowRaw` on a local port.
async fn start_slow_raw(gw: SlowRaw) -> url::Url {
    let app = Router::new().fallback(slow_raw).with_state(gw);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A gateway answering CARs 406 and every raw block request just before `response_timeout`:
/// each body arrived at full speed inside its own window, and the wait for the headers was in
/// no window, so the transfer as a whole ran far below `min_rate` (256 KiB per 400 ms, about
/// 0.6 MiB/s, against 4 MiB/s here; with the defaults, a block per 29 s against 16 KiB/s) and
/// the gateway was never abandoned. Pre-existing, not from 71581fd. Fixed: one rate window runs
/// across a raw attempt's requests and the waits for their headers are the gateway's time in
/// it, so the gateway fails with `TooSlow` (in raw mode) before it has answered every block,
/// and the next gateway completes from the verified position, every byte once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_raw_responses_delayed_below_the_response_timeout_are_held_to_min_rate() {
    let fx = fixture(SIZE);
    let gw = SlowRaw {
        store: fx.store.clone(),
        delay: Duration::from_millis(400),
        requests: Arc::default(),
    };
    let requests = gw.requests.clone();
    let url = start_slow_raw(gw).await;
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let opts = FetchOptions {
        min_rate: 4 << 20,
        rate_grace: Duration::from_millis(200),
        response_timeout: Duration::from_secs(2),
        ..FetchOptions::default()
    };
    let got = Recorder::default();
    let report = fetch_into(
        fx.root,
        SIZE as u64,
        &[url.clone(), honest.url.clone()],
        got.clone(),
        &opts,
    )
    .await
    .unwrap();
    assert!(got.bytes() == fx.bytes);
    // Five 400 ms waits for about 0.8 MB: the gateway is abandoned for the next.
    assert!(
        report.completed_by.0 == honest.url,
        "the slow raw gateway completed the fetch, never judged ({:?})",
        report.completed_by
    );
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let failure = &report.failures[0];
    assert!(
        failure.gateway == url
            && failure.mode == FetchMode::Raw
            && matches!(failure.error, AttemptError::TooSlow { min_rate, .. } if min_rate == 4 << 20),
        "{failure:?}"
    );
    assert!(
        requests.load(Ordering::SeqCst) < 5,
        "the slow gateway answered every block (the root and 4 leaves)"
    );
}

/// The other side of the raw fallback's rate guard: a gateway answering CARs 406 and each raw
/// block after a short wait (20 ms) is slow but well above `min_rate` (256 KiB/s over 500 ms
/// windows) once its waits count: it completes the fetch alone, no failure, one request per
/// block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_raw_responses_slow_but_above_min_rate_complete() {
    let fx = fixture(SIZE);
    let gw = SlowRaw {
        store: fx.store.clone(),
        delay: Duration::from_millis(20),
        requests: Arc::default(),
    };
    let requests = gw.requests.clone();
    let url = start_slow_raw(gw).await;
    let opts = FetchOptions {
        min_rate: 256 << 10,
        rate_grace: Duration::from_millis(500),
        ..FetchOptions::default()
    };
    let got = Recorder::default();
    let report = fetch_into(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&url),
        got.clone(),
        &opts,
    )
    .await
    .unwrap_or_else(|e| panic!("a slow raw gateway above min_rate failed: {e:?}"));
    assert!(got.bytes() == fx.bytes);
    assert_eq!(report.completed_by, (url, FetchMode::Raw));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(requests.load(Ordering::SeqCst), 5, "the root and 4 leaves");
}
