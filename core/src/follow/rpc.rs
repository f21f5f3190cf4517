//! A small JSON-RPC client for the follower: several endpoints with failover,
//! retries with exponential backoff and jitter, a timeout per request, and
//! classification of `eth_getLogs` range-limit errors (with the providers'
//! hints parsed by [`super::hint`]).
//!
//! It is written on `reqwest` rather than an alloy provider so that every
//! failure mode a flaky node shows (HTTP errors, timeouts, truncated or
//! malformed JSON, range limits) is classified in one place.

use std::{
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U64},
    rpc::types::Log,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::hint::{RangeHint, parse_range_hint};
use crate::{Error, Result};

/// Retry schedule of one request: `attempts` tries in all (over every
/// endpoint in turn), sleeping `base · 2^n` (capped at `max`) plus up to 50 %
/// random jitter between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request before giving up with [`Error::RpcExhausted`].
    pub attempts: u32,
    /// First backoff.
    pub base: Duration,
    /// Longest backoff.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 12 tries, 100 ms doubling to 5 s: about half a minute of outage per request.
    fn default() -> Self {
        Self {
            attempts: 12,
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (0-based), with jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.max);
        // std's RandomState is seeded randomly per instance: enough for jitter.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let jitter = exp.mul_f64((random % 1000) as f64 / 2000.0);
        exp + jitter
    }
}

/// The head of one block: what the follower needs to chain blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockHead {
    /// Block number.
    pub number: U64,
    /// Block hash.
    pub hash: B256,
    /// Parent block hash.
    pub parent_hash: B256,
}

/// The fields of a transaction the indexer reads: where it went and its calldata.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TransactionInput {
    /// Recipient (none for a contract creation).
    pub to: Option<Address>,
    /// Calldata.
    pub input: alloy::primitives::Bytes,
}

/// An `eth_getTransactionByHash` answer for `asked`: accepted only if it is a transaction
/// of a type alloy knows whose signed fields re-encode (EIP-2718) to exactly `asked`, so a
/// node cannot fill in another calldata (the `hash` it states is only its claim).
/// `Ok(None)` when its type is one alloy does not know (an L2's own type): its calldata cannot
/// be checked, and the caller goes without it (review of 141415a, F2).
fn decode_object(asked: &B256, text: &str) -> Result<Option<TransactionInput>, CallError> {
    use alloy::{consensus::Transaction as _, eips::eip2718::Encodable2718};
    #[derive(Deserialize)]
    struct Claimed {
        hash: B256,
        #[serde(default, rename = "type")]
        ty: Option<alloy::primitives::U64>,
    }
    let claimed: Claimed = serde_json::from_str(text).map_err(|e| {
        CallError::Transient(format!("{FULL_METHOD}({asked}): unexpected result: {e}"))
    })?;
    if claimed.hash != *asked {
        return Err(CallError::Transient(format!(
            "{FULL_METHOD}({asked}) answered transaction {}",
            claimed.hash
        )));
    }
    let ty = claimed.ty.map_or(0, |t| t.to::<u64>());
    if !u8::try_from(ty).is_ok_and(known_type) {
        return Ok(None);
    }
    let tx: alloy::rpc::types::Transaction = serde_json::from_str(text).map_err(|e| {
        CallError::Transient(format!(
            "{FULL_METHOD}({asked}): a type-{ty} transaction that does not decode: {e}"
        ))
    })?;
    let envelope = tx.inner.into_inner();
    let actual = alloy::primitives::keccak256(envelope.encoded_2718());
    if actual != *asked || envelope.tx_hash() != asked {
        return Err(CallError::Transient(format!(
            "{FULL_METHOD}({asked}) answered a transaction whose signed fields hash to {actual}"
        )));
    }
    Ok(Some(TransactionInput {
        to: envelope.to(),
        input: envelope.input().clone(),
    }))
}

/// Why one call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// Worth retrying (possibly on another endpoint): transport, HTTP status,
    /// timeout, malformed or truncated JSON, a node error.
    Transient(String),
    /// `eth_getLogs` refused the range; `hint` is what the provider suggested.
    RangeLimit {
        /// The provider's hint, if it gave one.
        hint: Option<RangeHint>,
        /// The provider's message.
        message: String,
    },
}

/// JSON-RPC over HTTP to one or more equivalent endpoints.
#[derive(Debug)]
pub struct Rpc {
    client: reqwest::Client,
    urls: Vec<String>,
    current: AtomicUsize,
    retry: RetryPolicy,
    /// Failed calls per endpoint (transport, HTTP, JSON or node errors; not
    /// range-limit answers), for metrics.
    errors: Vec<AtomicU64>,
    /// Endpoints that said they take no JSON-RPC batches: asked one call at a time until the
    /// mark lapses.
    no_batches: Vec<Mark>,
    /// Endpoints that answered `eth_getRawTransactionByHash` with "method not found": asked
    /// `eth_getTransactionByHash` until the mark lapses.
    no_raw: Vec<Mark>,
    /// How long a [`Mark`] holds ([`RECHECK_AFTER`] unless set).
    recheck_after: Duration,
    /// The largest answer read ([`MAX_RESPONSE_BYTES`] unless set).
    max_response: usize,
}

/// How long an endpoint is taken at its word that it lacks batches or the raw method before
/// it is asked the better way again (it may be upgraded or replaced behind its URL, or the
/// answer may have come from one bad backend behind a load balancer): 10 minutes.
pub const RECHECK_AFTER: Duration = Duration::from_secs(600);

/// "This endpoint lacks a feature", as of when it said so.
#[derive(Debug, Default)]
struct Mark(std::sync::Mutex<Option<std::time::Instant>>);

impl Mark {
    fn set(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::time::Instant::now());
    }

    /// Whether the mark was set less than `lasting` ago.
    fn holds(&self, lasting: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < lasting)
    }
}

/// How [`Rpc::transaction_inputs`] asks for a transaction first: its signed bytes, which must
/// hash to the transaction's hash.
const RAW_METHOD: &str = "eth_getRawTransactionByHash";
/// How it asks when an endpoint has no [`RAW_METHOD`], takes no batches, or the transaction's
/// type is unknown to the decoder.
const FULL_METHOD: &str = "eth_getTransactionByHash";

/// The answers of one calldata batch, in the order asked.
enum Answers {
    /// [`RAW_METHOD`]: a transaction's bytes, or `null`.
    Raw(Vec<Option<alloy::primitives::Bytes>>),
    /// [`FULL_METHOD`]: a transaction object's JSON text, or `null`.
    Full(Vec<Option<String>>),
}

/// The recipient and calldata of the signed transaction `bytes` answered for `asked`:
/// `Err` when they do not hash to `asked` (another transaction, or forged bytes) or do not
/// decode as a known type's well-formed encoding, `Ok(None)` when their type is one alloy's
/// decoder does not know (an L2's own type: then asked as an object).
fn decode_raw(asked: &B256, bytes: &[u8]) -> Result<Option<TransactionInput>, CallError> {
    use alloy::{
        consensus::{Transaction as _, TxEnvelope},
        eips::eip2718::Decodable2718,
    };
    let actual = alloy::primitives::keccak256(bytes);
    if actual != *asked {
        return Err(CallError::Transient(format!(
            "{RAW_METHOD}({asked}) answered bytes hashing to {actual}"
        )));
    }
    // A typed transaction starts with its type (below 0x80), a legacy one with an RLP list
    // header (0xc0 and up).
    if let Some(&ty) = bytes.first()
        && ty < 0x80
        && !known_type(ty)
    {
        return Ok(None);
    }
    let mut rest = bytes;
    match TxEnvelope::decode_2718(&mut rest) {
        // The 4844 decoder also reads the network form (with the blobs' sidecar), whose
        // keccak is not the transaction's hash: the hash must be the decoded transaction's own
        // (review of 141415a, F4).
        Ok(tx) if rest.is_empty() && tx.tx_hash() != asked => Err(CallError::Transient(format!(
            "{RAW_METHOD}({asked}): bytes of transaction {} in another form",
            tx.tx_hash()
        ))),
        Ok(tx) if rest.is_empty() => Ok(Some(TransactionInput {
            to: tx.to(),
            input: tx.input().clone(),
        })),
        Ok(_) => Err(CallError::Transient(format!(
            "{RAW_METHOD}({asked}): {} bytes after the transaction",
            rest.len()
        ))),
        Err(e) => Err(CallError::Transient(format!(
            "{RAW_METHOD}({asked}): the transaction does not decode: {e}"
        ))),
    }
}

/// Whether alloy's envelope decodes transactions of EIP-2718 type `ty` (0 is legacy).
fn known_type(ty: u8) -> bool {
    alloy::consensus::TxType::try_from(ty).is_ok()
}

/// A [`RAW_METHOD`] result: a JSON string of 0x-hex bytes.
fn raw_result(text: &str) -> Option<alloy::primitives::Bytes> {
    text.starts_with('"')
        .then(|| serde_json::from_str(text).ok())
        .flatten()
}

/// A [`FULL_METHOD`] result: a transaction object's text (serde would also read a struct from
/// an array, so the text must be an object), checked by [`decode_object`].
fn full_result(text: &str) -> Option<String> {
    text.starts_with('{').then(|| text.to_owned())
}

/// Transactions asked for in one JSON-RPC batch by [`Rpc::transaction_inputs`].
pub const INPUTS_PER_BATCH: usize = 100;

/// The largest answer [`Rpc`] reads by default: 64 MiB (a batch of [`INPUTS_PER_BATCH`]
/// transactions of the 128 KiB nodes accept is under 26 MiB hex-encoded; the follower's
/// adaptive `eth_getLogs` ranges aim at a few MiB, and a larger answer splits its range).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

impl Rpc {
    /// A client over `urls` (tried in order, moving on when one fails), with a
    /// `timeout` per request.
    pub fn new(urls: Vec<String>, timeout: Duration, retry: RetryPolicy) -> Result<Self> {
        if urls.is_empty() {
            return Err(Error::NoRpcUrl);
        }
        // No redirects: a node does not get to send the client's requests elsewhere.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Rpc {
                during: "building the http client",
                reason: e.to_string(),
            })?;
        let errors = urls.iter().map(|_| AtomicU64::new(0)).collect();
        let marks = || urls.iter().map(|_| Mark::default()).collect();
        let (no_batches, no_raw) = (marks(), marks());
        Ok(Self {
            client,
            urls,
            current: AtomicUsize::new(0),
            retry,
            errors,
            no_batches,
            no_raw,
            recheck_after: RECHECK_AFTER,
            max_response: MAX_RESPONSE_BYTES,
        })
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Index of the endpoint requests go to now.
    pub(crate) fn endpoint(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.urls.len()
    }

    /// Moves on to the next endpoint after `failed` misbehaved (unless another
    /// task already did).
    pub(crate) fn fail_over(&self, failed: usize) {
        let _ = self.current.compare_exchange(
            failed,
            (failed + 1) % self.urls.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The URL of endpoint `index`, for logs.
    pub(crate) fn url(&self, index: usize) -> &str {
        &self.urls[index % self.urls.len()]
    }

    /// Failed calls so far per endpoint, in URL order, each with the
    /// endpoint's `host:port` only (a URL's path or credentials may hold an
    /// API key). Transport, HTTP, JSON and node errors count; range-limit
    /// answers (normal backfill traffic) do not.
    pub fn endpoint_errors(&self) -> Vec<(String, u64)> {
        self.urls
            .iter()
            .zip(&self.errors)
            .map(|(url, n)| {
                let host = reqwest::Url::parse(url)
                    .ok()
                    .map(|u| match (u.host_str(), u.port_or_known_default()) {
                        (Some(h), Some(p)) => format!("{h}:{p}"),
                        (Some(h), None) => h.to_owned(),
                        _ => "unknown".to_owned(),
                    })
                    .unwrap_or_else(|| "unknown".to_owned());
                (host, n.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// One JSON-RPC call to endpoint `index`, no retry; a failure other than
    /// a range limit is counted against the endpoint.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        index: usize,
        method: &str,
        params: Value,
    ) -> Result<T, CallError> {
        let result = self.call_once(index, method, params).await;
        if let Err(CallError::Transient(_)) = &result {
            self.errors[index % self.urls.len()].fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        index: usize,
        method: &str,
        params: Value,
    ) -> Result<T, CallError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response = self
            .client
            .post(self.url(index))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| CallError::Transient(format!("{method}: {e}")))?;
        let status = response.status();
        let bytes = self.read_capped(response, method).await?;
        parse_response(method, status, &bytes)
    }

    /// The body of `response`, read up to [`max_response_bytes`](Self::with_max_response_bytes):
    /// a node cannot make the client hold more (a `Content-Length` above it is refused before
    /// any byte is read). Too large an `eth_getLogs` answer is a range limit, so the range is
    /// split; too large any other answer fails the call.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        method: &str,
    ) -> Result<Vec<u8>, CallError> {
        let cap = self.max_response;
        let too_large = || {
            let message = format!("{method}: the answer is larger than {cap} bytes");
            if method == "eth_getLogs" {
                CallError::RangeLimit {
                    hint: None,
                    message,
                }
            } else {
                CallError::Transient(message)
            }
        };
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| CallError::Transient(format!("{method}: reading the body: {e}")))?
        {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The same client with another cap on the size of one answer (default
    /// [`MAX_RESPONSE_BYTES`]).
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response = bytes;
        self
    }

    /// This client with endpoints' "no batches" and "no raw method" marks lasting `after`
    /// instead of [`RECHECK_AFTER`].
    pub fn with_recheck_after(mut self, after: Duration) -> Self {
        self.recheck_after = after;
        self
    }

    /// Runs `op` against the current endpoint, retrying transient failures with
    /// backoff and failing over to the next endpoint each time.
    pub(crate) async fn retrying<T, F, Fut>(&self, during: &'static str, mut op: F) -> Result<T>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut last = String::new();
        for attempt in 0..self.retry.attempts.max(1) {
            let index = self.endpoint();
            match op(index).await {
                Ok(value) => return Ok(value),
                Err(CallError::Transient(reason))
                | Err(CallError::RangeLimit {
                    message: reason, ..
                }) => {
                    tracing::warn!(endpoint = self.url(index), attempt, %reason, "rpc call failed, retrying");
                    last = reason;
                    self.fail_over(index);
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
            }
        }
        Err(Error::RpcExhausted {
            during,
            attempts: self.retry.attempts.max(1),
            last,
        })
    }

    /// `eth_chainId`, with retries.
    pub async fn chain_id(&self) -> Result<u64> {
        let id: U64 = self
            .retrying("eth_chainId", |i| self.call(i, "eth_chainId", json!([])))
            .await?;
        Ok(id.to())
    }

    /// `eth_blockNumber`: the highest head any endpoint reports (asked of all
    /// at once), and requests move to that endpoint, so a lagging node never
    /// holds the follower back; retried while none answers.
    pub async fn block_number(&self) -> Result<u64> {
        let mut last = String::new();
        for attempt in 0..self.retry.attempts.max(1) {
            let answers = futures_util::future::join_all(
                (0..self.urls.len()).map(|i| self.call::<U64>(i, "eth_blockNumber", json!([]))),
            )
            .await;
            let best = answers
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.as_ref().ok().map(|n| (n.to::<u64>(), i)))
                .max_by_key(|(n, i)| (*n, std::cmp::Reverse(*i)));
            if let Some((head, index)) = best {
                self.current.store(index, Ordering::Relaxed);
                return Ok(head);
            }
            if let Some(Err(CallError::Transient(e) | CallError::RangeLimit { message: e, .. })) =
                answers.into_iter().next_back()
            {
                last = e;
            }
            tracing::warn!(attempt, %last, "no endpoint answered eth_blockNumber, retrying");
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        }
        Err(Error::RpcExhausted {
            during: "eth_blockNumber",
            attempts: self.retry.attempts.max(1),
            last,
        })
    }

    /// The head of block `number` from endpoint `index` (a node that does not
    /// have the block yet answers `null`: a transient failure, so a lagging
    /// node is skipped rather than believed).
    pub(crate) async fn block_head_at(
        &self,
        index: usize,
        number: u64,
    ) -> Result<BlockHead, CallError> {
        let head: Option<BlockHead> = self
            .call(
                index,
                "eth_getBlockByNumber",
                json!([U64::from(number), false]),
            )
            .await?;
        match head {
            Some(h) if h.number.to::<u64>() == number => Ok(h),
            Some(h) => Err(CallError::Transient(format!(
                "eth_getBlockByNumber({number}) answered block {}",
                h.number
            ))),
            None => Err(CallError::Transient(format!(
                "block {number} not found (the node lags)"
            ))),
        }
    }

    /// The recipients and calldata of `hashes` (duplicates allowed), [`INPUTS_PER_BATCH`] to a
    /// JSON-RPC batch request, up to four batches in flight, each retried and failed over like
    /// any call; an endpoint that does not take batches is asked one transaction at a time.
    /// Any transaction a node does not know fails the batch (retried on the next endpoint).
    /// Every returned calldata is checked against its transaction's hash (see `inputs_at`); a
    /// transaction of a type alloy does not know has no checkable calldata and is left out of
    /// the map (its release keeps no approval, like one published through a contract).
    pub async fn transaction_inputs(
        &self,
        hashes: &[B256],
    ) -> Result<std::collections::HashMap<B256, TransactionInput>> {
        use futures_util::{StreamExt, TryStreamExt, stream};
        let mut wanted = hashes.to_vec();
        wanted.sort();
        wanted.dedup();
        stream::iter(wanted.chunks(INPUTS_PER_BATCH).map(<[B256]>::to_vec))
            .map(|chunk| async move {
                self.retrying("transaction calldata", |i| {
                    let chunk = chunk.clone();
                    async move { self.inputs_at(i, &chunk).await }
                })
                .await
            })
            .buffer_unordered(4)
            .try_fold(
                std::collections::HashMap::new(),
                |mut all, got| async move {
                    all.extend(got);
                    Ok(all)
                },
            )
            .await
    }

    /// One batch of [`transaction_inputs`](Self::transaction_inputs) from endpoint `index`:
    /// the signed transactions' bytes (`eth_getRawTransactionByHash`), each accepted only if
    /// its keccak-256 is the hash asked for, so a node cannot answer another transaction's
    /// calldata or forge it; decoded with alloy's checked EIP-2718 decoder. A transaction of a
    /// type that decoder does not know, and every transaction of an endpoint without the raw
    /// method or without batches (until its [`Mark`] lapses), is asked with
    /// `eth_getTransactionByHash` instead, whose objects [`decode_object`] checks.
    async fn inputs_at(
        &self,
        index: usize,
        hashes: &[B256],
    ) -> Result<Vec<(B256, TransactionInput)>, CallError> {
        if self.no_batches[index % self.urls.len()].holds(self.recheck_after) {
            return self.inputs_one_by_one(index, hashes).await;
        }
        let raw = !self.no_raw[index % self.urls.len()].holds(self.recheck_after);
        self.inputs_batched(index, hashes, raw).await
    }

    /// [`inputs_at`](Self::inputs_at) as one batch, of [`RAW_METHOD`] calls if `raw`.
    async fn inputs_batched(
        &self,
        index: usize,
        hashes: &[B256],
        raw: bool,
    ) -> Result<Vec<(B256, TransactionInput)>, CallError> {
        let no_batches = &self.no_batches[index % self.urls.len()];
        let no_raw = &self.no_raw[index % self.urls.len()];
        let method = if raw { RAW_METHOD } else { FULL_METHOD };
        let body: Vec<Value> = hashes
            .iter()
            .enumerate()
            .map(|(id, hash)| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": [hash]}))
            .collect();
        let sent = self
            .client
            .post(self.url(index))
            .header("content-type", "application/json")
            .body(Value::Array(body).to_string())
            .send()
            .await;
        let bytes = match sent {
            Ok(response) => {
                let status = response.status();
                self.read_capped(response, method)
                    .await
                    .map(|bytes| (status, bytes))
            }
            Err(e) => Err(CallError::Transient(format!("{method} batch: {e}"))),
        };
        let result = match bytes {
            Err(e) => Err(BatchError::Call(e)),
            Ok((status, bytes)) if raw => {
                parse_batch(status, &bytes, hashes.len(), method, &raw_result).map(Answers::Raw)
            }
            Ok((status, bytes)) => {
                parse_batch(status, &bytes, hashes.len(), method, &full_result).map(Answers::Full)
            }
        };
        let not_found = |hash: &B256| CallError::Transient(format!("transaction {hash} not found"));
        match result {
            Ok(Answers::Full(found)) => {
                let mut got = Vec::with_capacity(hashes.len());
                for (hash, text) in hashes.iter().zip(found) {
                    let text = text.ok_or_else(|| not_found(hash))?;
                    if let Some(input) = self.checked_object(index, hash, &text)? {
                        got.push((*hash, input));
                    }
                }
                Ok(got)
            }
            Ok(Answers::Raw(found)) => {
                let mut got = Vec::with_capacity(hashes.len());
                let mut unknown_type = Vec::new();
                for (hash, bytes) in hashes.iter().zip(found) {
                    let bytes = bytes.ok_or_else(|| not_found(hash))?;
                    match decode_raw(hash, &bytes)? {
                        Some(input) => got.push((*hash, input)),
                        None => unknown_type.push(*hash),
                    }
                }
                if !unknown_type.is_empty() {
                    got.extend(self.inputs_one_by_one(index, &unknown_type).await?);
                }
                Ok(got)
            }
            Err(BatchError::Unsupported) => {
                tracing::info!(
                    endpoint = self.url(index),
                    "the endpoint does not take JSON-RPC batches; asking one call at a time"
                );
                no_batches.set();
                self.inputs_one_by_one(index, hashes).await
            }
            Err(BatchError::NoMethod) if raw => {
                tracing::info!(
                    endpoint = self.url(index),
                    "the endpoint has no {RAW_METHOD}; asking {FULL_METHOD}"
                );
                no_raw.set();
                Box::pin(self.inputs_batched(index, hashes, false)).await
            }
            Err(BatchError::NoMethod) => {
                self.errors[index % self.urls.len()].fetch_add(1, Ordering::Relaxed);
                Err(CallError::Transient(format!(
                    "{method} batch: the endpoint says the method does not exist"
                )))
            }
            Err(BatchError::Call(e)) => {
                self.errors[index % self.urls.len()].fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// `hashes` asked with `eth_getTransactionByHash` one call at a time, each answer checked
    /// by [`decode_object`] (those of unknown types left out).
    async fn inputs_one_by_one(
        &self,
        index: usize,
        hashes: &[B256],
    ) -> Result<Vec<(B256, TransactionInput)>, CallError> {
        let mut got = Vec::with_capacity(hashes.len());
        for hash in hashes {
            // A node that does not know a transaction answers `null`: retried on the next
            // endpoint.
            let tx: Option<Box<serde_json::value::RawValue>> =
                self.call(index, FULL_METHOD, json!([hash])).await?;
            let tx =
                tx.ok_or_else(|| CallError::Transient(format!("transaction {hash} not found")))?;
            let text = full_result(tx.get()).ok_or_else(|| {
                CallError::Transient(format!(
                    "{FULL_METHOD}({hash}): a result that is not a transaction object"
                ))
            })?;
            if let Some(input) = self.checked_object(index, hash, &text)? {
                got.push((*hash, input));
            }
        }
        Ok(got)
    }

    /// [`decode_object`], logging a transaction whose calldata cannot be checked.
    fn checked_object(
        &self,
        index: usize,
        hash: &B256,
        text: &str,
    ) -> Result<Option<TransactionInput>, CallError> {
        let input = decode_object(hash, text)?;
        if input.is_none() {
            tracing::warn!(
                endpoint = self.url(index),
                tx = %hash,
                "a transaction of a type whose signed fields cannot be checked: its calldata is not used"
            );
        }
        Ok(input)
    }

    /// The head of block `number`, with retries.
    pub async fn block_head(&self, number: u64) -> Result<BlockHead> {
        self.retrying("eth_getBlockByNumber", |i| self.block_head_at(i, number))
            .await
    }

    /// `eth_call` of `data` to `to` at the latest block, with retries: the
    /// return data of a view (the indexer reads roles from chain state at
    /// request time through it). A revert is a node error, retried like any.
    pub async fn call_latest(
        &self,
        to: Address,
        data: alloy::primitives::Bytes,
    ) -> Result<alloy::primitives::Bytes> {
        self.retrying("eth_call", |i| {
            let data = data.clone();
            async move {
                self.call(i, "eth_call", json!([{"to": to, "input": data}, "latest"]))
                    .await
            }
        })
        .await
    }

    /// `eth_getLogs` of `addresses` over `from..=to` on endpoint `index`, every
    /// log checked to be complete, inside the range and from one of the addresses.
    pub(crate) async fn logs_at(
        &self,
        index: usize,
        addresses: &[Address],
        from: u64,
        to: u64,
    ) -> Result<Vec<Log>, CallError> {
        let logs: Vec<Log> = self
            .call(
                index,
                "eth_getLogs",
                json!([{"address": addresses, "fromBlock": U64::from(from), "toBlock": U64::from(to)}]),
            )
            .await?;
        for log in &logs {
            let complete = log.block_hash.is_some()
                && log.transaction_hash.is_some()
                && log.log_index.is_some()
                && !log.removed;
            let inside = log.block_number.is_some_and(|n| (from..=to).contains(&n));
            if !complete || !inside || !addresses.contains(&log.address()) {
                return Err(CallError::Transient(format!(
                    "eth_getLogs({from}..={to}) returned a log outside the request or incomplete: {log:?}"
                )));
            }
        }
        Ok(logs)
    }
}

/// A JSON-RPC response body parsed into `T`, or the call's error (a range limit for
/// `eth_getLogs` when the node's message says so).
fn parse_response<T: DeserializeOwned>(
    method: &str,
    status: reqwest::StatusCode,
    bytes: &[u8],
) -> Result<T, CallError> {
    // The envelope is parsed with its result left as raw text, and the result parsed
    // straight into `T`: no `Value` tree of a large `eth_getLogs` answer, no copy of it.
    // (`"result": null` is a result — `T` may be an `Option` — not a missing one.)
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(default, borrow, deserialize_with = "present")]
        result: Option<&'a serde_json::value::RawValue>,
        #[serde(default)]
        error: Option<Value>,
    }
    // A response is an object (serde would also read a struct from an array).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(CallError::Transient(format!(
            "{method}: http {status}, invalid json: the response is not a JSON object"
        )));
    }
    let envelope: Envelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| CallError::Transient(format!("{method}: http {status}, invalid json: {e}")))?;
    if let Some(error) = envelope.error.filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        if method == "eth_getLogs" && is_range_limit(code, &message) {
            let hint = parse_range_hint(&message);
            return Err(CallError::RangeLimit { hint, message });
        }
        return Err(CallError::Transient(format!(
            "{method}: node error {code}: {message}"
        )));
    }
    if !status.is_success() {
        return Err(CallError::Transient(format!("{method}: http {status}")));
    }
    let result = envelope
        .result
        .ok_or_else(|| CallError::Transient(format!("{method}: response has no result")))?;
    serde_json::from_str(result.get())
        .map_err(|e| CallError::Transient(format!("{method}: unexpected result: {e}")))
}

/// Why a batch failed.
#[derive(Debug)]
enum BatchError {
    /// The endpoint answered with something other than an array: it does not take batches.
    Unsupported,
    /// An answer was the JSON-RPC error "method not found" (-32601).
    NoMethod,
    /// Worth retrying, like any call.
    Call(CallError),
}

/// A JSON-RPC batch answer to `n` calls of `method` with ids `0..n`, in id order (a node may
/// answer in any order): every id exactly once, no error, each result `null` or what
/// `result` reads from its JSON text (`None`: not a result of `method`).
fn parse_batch<T>(
    status: reqwest::StatusCode,
    bytes: &[u8],
    n: usize,
    method: &str,
    result: &dyn Fn(&str) -> Option<T>,
) -> Result<Vec<Option<T>>, BatchError> {
    #[derive(serde::Deserialize)]
    struct Item<'a> {
        id: Option<u64>,
        #[serde(default, borrow, deserialize_with = "present")]
        result: Option<&'a serde_json::value::RawValue>,
        #[serde(default)]
        error: Option<Value>,
    }
    let transient = |m: String| BatchError::Call(CallError::Transient(m));
    match bytes.trim_ascii_start().first() {
        Some(b'[') => {}
        // An object (typically an error saying batches are not supported), or an HTTP error
        // page: not a batch answer.
        Some(b'{') if status.is_success() || status == reqwest::StatusCode::BAD_REQUEST => {
            return Err(if says_no_batches(bytes) {
                BatchError::Unsupported
            } else {
                // A rate limit or a server error for the whole batch: worth retrying, and no
                // reason to stop batching (review of 141415a, F3).
                transient(format!(
                    "{method} batch: http {status}, one object for the batch"
                ))
            });
        }
        _ => {
            return Err(transient(format!(
                "{method} batch: http {status}, not a JSON array"
            )));
        }
    }
    let invalid = |e: &dyn std::fmt::Display| {
        transient(format!("{method} batch: http {status}, invalid json: {e}"))
    };
    // Each answer, and each transaction in it, must be an object (serde would also read a
    // struct from an array): checked on the raw text before the typed parse.
    let raw: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(bytes).map_err(|e| invalid(&e))?;
    if !status.is_success() {
        return Err(transient(format!("{method} batch: http {status}")));
    }
    if raw.len() != n {
        return Err(transient(format!(
            "{method} batch: {} answers to {n} calls",
            raw.len()
        )));
    }
    let mut found: Vec<Option<Option<T>>> = (0..n).map(|_| None).collect();
    let mut no_method = 0;
    for item in raw {
        if !item.get().starts_with('{') {
            return Err(invalid(&"an answer that is not an object"));
        }
        let item: Item<'_> = serde_json::from_str(item.get()).map_err(|e| invalid(&e))?;
        if let Some(error) = item.error.filter(|e| !e.is_null()) {
            // "Method not found" counts only when every answer says it (review of 141415a,
            // F1: one such item among results is a broken or lying node, not a missing
            // method).
            if error.get("code").and_then(Value::as_i64) == Some(-32601) {
                no_method += 1;
                continue;
            }
            return Err(transient(format!("{method} batch: node error: {error}")));
        }
        let id = item
            .id
            .and_then(|id| usize::try_from(id).ok())
            .filter(|&id| id < n)
            .ok_or_else(|| transient(format!("{method} batch: an answer with an unknown id")))?;
        let raw_result = item
            .result
            .ok_or_else(|| transient(format!("{method} batch: an answer without a result")))?;
        let value = match raw_result.get() {
            "null" => None,
            text => Some(result(text).ok_or_else(|| {
                let what = if method == RAW_METHOD {
                    "0x-hex bytes"
                } else {
                    "a transaction object"
                };
                invalid(&format_args!("a result that is neither {what} nor null"))
            })?),
        };
        if found[id].replace(value).is_some() {
            return Err(transient(format!(
                "{method} batch: two answers with id {id}"
            )));
        }
    }
    if no_method == n {
        return Err(BatchError::NoMethod);
    }
    if no_method > 0 {
        return Err(transient(format!(
            "{method} batch: {no_method} of {n} answers say the method does not exist"
        )));
    }
    // n answers, each id below n, none twice: every id is there.
    Ok(found.into_iter().map(Option::flatten).collect())
}

/// Whether a single object answered to a batch says the endpoint takes no batches: an
/// "invalid request" (-32600) or "method not found" (-32601) error, an error whose message
/// names batches, or a body that is no JSON-RPC error at all (such as the answer to the first
/// call alone).
fn says_no_batches(bytes: &[u8]) -> bool {
    let Ok(answer) = serde_json::from_slice::<Value>(bytes) else {
        return true;
    };
    let error = &answer["error"];
    if !error.is_object() {
        return true;
    }
    matches!(error["code"].as_i64(), Some(-32600 | -32601))
        || error["message"]
            .as_str()
            .is_some_and(|m| m.to_ascii_lowercase().contains("batch"))
}

/// A field that is there, `null` included (plain `Option` reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de serde_json::value::RawValue>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// Whether a node's `eth_getLogs` error says the range or result set is too
/// large (rather than the node being broken).
fn is_range_limit(code: i64, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    code == -32005
        || [
            "too many",
            "more than",
            "range",
            "limit",
            "exceed",
            "too large",
            "response size",
            "too wide",
        ]
        .iter()
        .any(|needle| m.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_at_most_half() {
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..40 {
            let exp = (Duration::from_millis(100) * 2u32.pow(attempt.min(16)))
                .min(Duration::from_secs(1));
            let b = p.backoff(attempt);
            assert!(b >= exp && b <= exp + exp / 2, "{attempt}: {b:?}");
        }
    }

    #[test]
    fn range_limit_messages_are_recognised() {
        for (code, m) in [
            (-32005, "query returned more than 10000 results"),
            (-32600, "Log response size exceeded."),
            (-32000, "block range is too wide"),
            (-32602, "eth_getLogs is limited to a 10,000 range"),
        ] {
            assert!(is_range_limit(code, m), "{m}");
        }
        assert!(!is_range_limit(-32000, "header not found"));
        assert!(!is_range_limit(-32603, "internal error"));
    }

    #[test]
    fn responses_parse_without_a_value_tree_and_keep_their_meaning() {
        let ok = reqwest::StatusCode::OK;
        let parse = |body: &str| parse_response::<Option<u64>>("eth_x", ok, body.as_bytes());
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"result":7}"#).unwrap(),
            Some(7)
        );
        // `null` is a result (an absent transaction, say), not a missing one.
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"result":null}"#).unwrap(),
            None
        );
        for (body, says) in [
            (r#"{"jsonrpc":"2.0","id":1}"#, "no result"),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":"seven"}"#,
                "unexpected result",
            ),
            (r#"{"jsonrpc":"2.0","id":1,"result":7"#, "invalid json"),
            (r#"[1,2]"#, "invalid json"),
            (r#"  [7, null]"#, "not a JSON object"),
            ("", "invalid json"),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}"#,
                "node error -32000: header not found",
            ),
        ] {
            match parse(body) {
                Err(CallError::Transient(m)) => assert!(m.contains(says), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        // An error next to a result is an error.
        assert!(parse(r#"{"result":1,"error":{"code":1,"message":"no"}}"#).is_err());
        // A range limit keeps the node's hint.
        let limited = parse_response::<Vec<u64>>(
            "eth_getLogs",
            ok,
            br#"{"error":{"code":-32005,"message":"query returned more than 10000 results. Try with this block range [0x1, 0x20]."}}"#,
        );
        match limited {
            Err(CallError::RangeLimit { hint, .. }) => assert!(hint.is_some()),
            other => panic!("{other:?}"),
        }
        // A non-2xx status with a well-formed result is still a failure.
        assert!(
            parse_response::<u64>(
                "eth_x",
                reqwest::StatusCode::BAD_GATEWAY,
                br#"{"result":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn batch_answers_are_matched_by_id_and_every_defect_refused() {
        let ok = reqwest::StatusCode::OK;
        let hash = alloy::hex::encode_prefixed(B256::repeat_byte(1));
        let tx =
            |to: &str, input: &str| format!(r#"{{"to":"{to}","input":"{input}","hash":"{hash}"}}"#);
        let a = tx("0x00000000000000000000000000000000000000aa", "0x01");
        let b = tx("0x00000000000000000000000000000000000000bb", "0x0202");
        // Out of order, one transaction unknown (`null`).
        let body = format!(
            r#"[{{"jsonrpc":"2.0","id":2,"result":null}},{{"id":0,"result":{b}}},{{"id":1,"result":{a}}}]"#
        );
        let got = parse_batch(ok, body.as_bytes(), 3, FULL_METHOD, &full_result).unwrap();
        // Matched by id; each object's text is checked by `decode_object` afterwards.
        assert_eq!(got[0].as_deref(), Some(b.as_str()));
        assert_eq!(got[1].as_deref(), Some(a.as_str()));
        assert!(got[2].is_none());

        let refused = |body: String, n: usize, says: &str| match parse_batch(
            ok,
            body.as_bytes(),
            n,
            FULL_METHOD,
            &full_result,
        ) {
            Err(BatchError::Call(CallError::Transient(m))) => {
                assert!(m.contains(says), "{body}: {m}")
            }
            other => panic!("{body}: {other:?}"),
        };
        refused(
            format!(r#"[{{"id":0,"result":{a}}}]"#),
            2,
            "1 answers to 2 calls",
        );
        refused(
            format!(r#"[{{"id":0,"result":{a}}},{{"id":0,"result":{b}}}]"#),
            2,
            "two answers with id 0",
        );
        refused(
            format!(r#"[{{"id":0,"result":{a}}},{{"id":2,"result":{b}}}]"#),
            2,
            "unknown id",
        );
        refused(
            format!(r#"[{{"id":0,"result":{a}}},{{"result":{b}}}]"#),
            2,
            "unknown id",
        );
        refused(
            format!(r#"[{{"id":0,"result":{a}}},{{"id":-1,"result":{b}}}]"#),
            2,
            "invalid json",
        );
        refused(
            format!(r#"[{{"id":0,"result":{a}}},{{"id":1}}]"#),
            2,
            "without a result",
        );
        refused(
            format!(
                r#"[{{"id":0,"result":{a}}},{{"id":1,"error":{{"code":-32000,"message":"busy"}}}}]"#
            ),
            2,
            "node error",
        );
        refused(
            format!(r#"[{{"id":0,"result":{a}}},{{"id":1,"result":7}}]"#),
            2,
            "invalid json",
        );
        refused(format!(r#"[{{"id":0,"result":{a}}}"#), 1, "invalid json");
        // Answers and transactions in array form (serde would read a struct from an array).
        refused(format!(r#"[[0, {a}]]"#), 1, "not an object");
        refused(
            format!(
                r#"[{{"id":0,"result":["0x00000000000000000000000000000000000000aa","0x01","{hash}"]}}]"#
            ),
            1,
            "neither a transaction object nor null",
        );
        refused("<html>bad gateway</html>".into(), 1, "not a JSON array");
        refused(String::new(), 1, "not a JSON array");
        // A node that does not take batches answers with one object: asked call by call.
        for status in [ok, reqwest::StatusCode::BAD_REQUEST] {
            assert!(matches!(
                parse_batch(status, br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batch not supported"}}"#, 2, FULL_METHOD, &full_result),
                Err(BatchError::Unsupported)
            ));
        }
        // Rate limits and server errors are worth retrying, not a reason to stop batching.
        for status in [
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            reqwest::StatusCode::BAD_GATEWAY,
        ] {
            assert!(matches!(
                parse_batch(
                    status,
                    br#"{"error":{"code":-32005,"message":"slow down"}}"#,
                    2,
                    FULL_METHOD,
                    &full_result,
                ),
                Err(BatchError::Call(_))
            ));
        }
        // An array under an error status is not trusted either.
        let body = format!(r#"[{{"id":0,"result":{a}}}]"#);
        assert!(matches!(
            parse_batch(
                reqwest::StatusCode::BAD_GATEWAY,
                body.as_bytes(),
                1,
                FULL_METHOD,
                &full_result
            ),
            Err(BatchError::Call(_))
        ));
    }
}
