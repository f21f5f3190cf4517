//! The chain follower: one engine that mirrors the contracts' logs into a
//! store, exactly once and reorg-safe. The indexer and the manufacturer's key
//! service each plug in their own [`FollowStore`].
//!
//! Each pass ([`Follower::sync`]):
//! 1. **Fork check.** The chain's hash at the checkpoint must equal the
//!    stored one. If not, the newest kept block hash the chain still has is
//!    the common ancestor: the store deletes everything above it and rewinds
//!    its checkpoint in one transaction ([`FollowStore::rewind`]). If none of
//!    the kept hashes matches, the reorg is deeper than the window and the
//!    follower stops with [`Error::ReorgTooDeep`] naming the block.
//! 2. **Backfill** of the final part (blocks at least `finality_depth` below
//!    the head) with `eth_getLogs` over adaptive ranges: a range grows while
//!    its responses are small and is split where a provider refuses it,
//!    following the provider's hint ([`hint`]); up to `in_flight` ranges are
//!    fetched while earlier ones are written, in order.
//! 3. **The unfinalised tip**, block by block: every block head is fetched and
//!    chained by parent hash to the checkpoint, and every log's block hash must
//!    be the head's (else a reorg happened mid-pass and the pass restarts).
//!
//! Every batch reaches the store with the hashes to remember and its last
//! block; the store writes rows, hashes and checkpoint in one transaction
//! ([`FollowStore::apply`]), so a crash at any point loses or repeats nothing.

pub mod hint;
pub mod rpc;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::{Address, B256},
    rpc::types::Log,
};
use futures_util::{StreamExt, stream};

use self::{
    hint::RangeHint,
    rpc::{BlockHead, CallError, Rpc, TransactionInput},
};
use crate::{Error, Result};

pub use rpc::RetryPolicy;

/// A block the store remembers: its number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
}

/// The logs of blocks `from..=to`, ready to be written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// First block covered.
    pub from: u64,
    /// Last block covered: the new checkpoint.
    pub to: BlockRef,
    /// Every log of the followed contracts in `from..=to`, ordered by block and log index.
    pub logs: Vec<Log>,
    /// Block hashes to remember (ascending; includes `to`).
    pub blocks: Vec<BlockRef>,
    /// Forget remembered hashes of blocks below this number.
    pub keep_from: u64,
    /// The calldata of the transactions that emitted a log named in
    /// [`FollowConfig::calldata_of`], by transaction hash (fetched in the
    /// pipelined fetch stage, so the store's write step makes no request).
    pub inputs: HashMap<B256, TransactionInput>,
}

/// A store's preparing step (see [`FollowStore::preparer`]): what it makes of a range's
/// logs and calldata before writing them.
pub type Preparer<P, E> =
    Arc<dyn Fn(&[Log], &HashMap<B256, TransactionInput>) -> Result<P, E> + Send + Sync>;

/// Where a follower keeps what it mirrored. Each method is one transaction.
pub trait FollowStore: Send {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// What [`preparer`](Self::preparer) makes of a batch (the indexer: its decoded rows).
    type Prepared: Send + 'static;

    /// The store's preparing step, which the follower runs in the fetch stage, on the range's
    /// own task: a backfill's batch is prepared (decoded) while the batch before it is being
    /// written. It sees only the batch, never the store.
    fn preparer(&self) -> Preparer<Self::Prepared, Self::Error>;

    /// The last block fully written, if any.
    fn checkpoint(&mut self) -> impl Future<Output = Result<Option<BlockRef>, Self::Error>> + Send;

    /// The remembered block hashes, newest first.
    fn recent_blocks(&mut self) -> impl Future<Output = Result<Vec<BlockRef>, Self::Error>> + Send;

    /// Writes the batch's rows (`prepared` is what the [`preparer`](Self::preparer) made of
    /// it), remembers its block hashes, forgets those below `keep_from` and moves the
    /// checkpoint to `batch.to`, in one transaction.
    fn apply(
        &mut self,
        batch: &Batch,
        prepared: Self::Prepared,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Deletes every row and remembered hash above `ancestor` and moves the
    /// checkpoint to it, in one transaction.
    fn rewind(
        &mut self,
        ancestor: BlockRef,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// How a follower fetches.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The contracts whose logs are followed.
    pub addresses: Vec<Address>,
    /// First block to read when the store is empty (the deployment block).
    pub start_block: u64,
    /// Blocks this far below the head are treated as final; the follower
    /// remembers the hashes of this many recent blocks, so this is also the
    /// deepest reorg it can repair.
    pub finality_depth: u64,
    /// First `eth_getLogs` range, in blocks.
    pub initial_range: u64,
    /// Largest `eth_getLogs` range.
    pub max_range: u64,
    /// A range that returned fewer logs than this doubles; more than twice this, halves.
    pub target_logs: usize,
    /// `eth_getLogs` requests in flight during backfill.
    pub in_flight: usize,
    /// Pause between polls of the head once caught up.
    pub poll_interval: Duration,
    /// `(contract, event signature)` pairs whose transactions' calldata the
    /// store needs: fetched with the logs, before the write step, into
    /// [`Batch::inputs`]. Empty by default.
    pub calldata_of: Vec<(Address, B256)>,
}

impl FollowConfig {
    /// Defaults for `addresses` from `start_block`: finality depth 64,
    /// ranges of 100 growing to 50,000 blocks, 2,000 logs per request,
    /// 4 requests in flight, a poll every second. The first range is small
    /// because the range adapts only after an answer: on a dense history (50
    /// events a block) a first range of 1,000 blocks was one 50,000-log
    /// answer and batch, and the backfill's peak RSS grew with the history.
    pub fn new(addresses: Vec<Address>, start_block: u64) -> Self {
        Self {
            addresses,
            start_block,
            finality_depth: 64,
            initial_range: 10,
            max_range: 50_000,
            target_logs: 2_000,
            in_flight: 4,
            poll_interval: Duration::from_secs(1),
            calldata_of: Vec::new(),
        }
    }
}

/// What one [`Follower::sync`] pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The chain head seen.
    pub head: u64,
    /// The checkpoint after the pass.
    pub checkpoint: Option<BlockRef>,
    /// Logs written.
    pub logs: usize,
    /// Depth of the reorg repaired in this pass (0 if none).
    pub reorg_depth: u64,
}

/// Restarts of one pass when the tip changes while it is read.
const MAX_RESTARTS: u32 = 8;

/// Follows the chain into a [`FollowStore`].
#[derive(Debug)]
pub struct Follower<S> {
    rpc: Arc<Rpc>,
    config: FollowConfig,
    store: S,
    range: Arc<AtomicU64>,
}

impl<S: FollowStore> Follower<S> {
    /// A follower reading through `rpc` into `store`.
    pub fn new(rpc: Arc<Rpc>, config: FollowConfig, store: S) -> Self {
        let range = Arc::new(AtomicU64::new(config.initial_range.max(1)));
        Self {
            rpc,
            config,
            store,
            range,
        }
    }

    /// The store.
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// The current adaptive `eth_getLogs` range, in blocks.
    pub fn range(&self) -> u64 {
        self.range.load(Ordering::Relaxed)
    }

    /// Follows the head forever (one [`sync`](Self::sync) per poll interval)
    /// until `stop` completes or an error that retries cannot cure.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = std::pin::pin!(stop);
        loop {
            let progress = self.sync().await?;
            tracing::debug!(?progress, "sync pass done");
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// One pass: repair a reorg if there was one, then write everything up
    /// to the head seen at the start of the pass.
    pub async fn sync(&mut self) -> Result<Progress> {
        let head = self.rpc.block_number().await?;
        let mut progress = Progress {
            head,
            ..Progress::default()
        };
        let mut checkpoint = self.checkpoint().await?;
        let mut restarts = 0;
        loop {
            if let Some(cp) = checkpoint {
                let (ancestor, depth) = self.check_fork(cp).await?;
                if let Some(ancestor) = ancestor {
                    progress.reorg_depth = progress.reorg_depth.max(depth);
                    checkpoint = Some(ancestor);
                }
            }
            let next = checkpoint.map_or(self.config.start_block, |c| c.number + 1);
            let safe = head.saturating_sub(self.config.finality_depth);
            if next <= safe {
                let (cp, logs) = self.backfill(next, safe).await?;
                progress.logs += logs;
                checkpoint = Some(cp);
            }
            let next = checkpoint.map_or(self.config.start_block, |c| c.number + 1);
            if next > head {
                break;
            }
            match self.tip(checkpoint, next, head).await? {
                Some((cp, logs)) => {
                    progress.logs += logs;
                    checkpoint = Some(cp);
                    break;
                }
                // The chain moved under us: check for a fork again, a few
                // times; then leave the rest to the next pass.
                None if restarts < MAX_RESTARTS => restarts += 1,
                None => break,
            }
        }
        progress.checkpoint = checkpoint;
        Ok(progress)
    }

    async fn checkpoint(&mut self) -> Result<Option<BlockRef>> {
        self.store.checkpoint().await.map_err(store_error)
    }

    /// Compares the checkpoint with the chain; on a fork, rewinds the store
    /// to the common ancestor and returns it with the reorg's depth.
    async fn check_fork(&mut self, cp: BlockRef) -> Result<(Option<BlockRef>, u64)> {
        if self.rpc.block_head(cp.number).await?.hash == cp.hash {
            return Ok((None, 0));
        }
        let recent = self.store.recent_blocks().await.map_err(store_error)?;
        for kept in &recent {
            if self.rpc.block_head(kept.number).await?.hash == kept.hash {
                tracing::warn!(
                    ancestor = kept.number,
                    depth = cp.number - kept.number,
                    "reorg: rewinding to the common ancestor"
                );
                self.store.rewind(*kept).await.map_err(store_error)?;
                return Ok((Some(*kept), cp.number - kept.number));
            }
        }
        let oldest = recent.last().copied().unwrap_or(cp);
        Err(Error::ReorgTooDeep {
            block: oldest.number,
            stored: oldest.hash,
            window: self.config.finality_depth,
        })
    }

    /// Writes the final blocks `from..=to` in pipelined adaptive ranges.
    async fn backfill(&mut self, from: u64, to: u64) -> Result<(BlockRef, usize)> {
        let rpc = self.rpc.clone();
        let range = self.range.clone();
        let config = self.config.clone();
        let keep = self.config.finality_depth;
        let preparer = self.store.preparer();
        let ranges = stream::unfold(from, move |start| {
            // A ready future around a spawned task (no async block borrowing the closure's
            // captures: that trips rustc's higher-ranked `Send` inference in callers).
            let next = (start <= to).then(|| {
                let size = range.load(Ordering::Relaxed).max(1);
                let end = start.saturating_add(size - 1).min(to);
                let task = spawn_range(
                    rpc.clone(),
                    config.clone(),
                    range.clone(),
                    preparer.clone(),
                    start,
                    end,
                );
                (task, end + 1)
            });
            std::future::ready(next)
        })
        .buffered(self.config.in_flight.max(1));
        let mut ranges = std::pin::pin!(ranges);
        let mut last = None;
        let mut written = 0;
        while let Some(fetched) = ranges.next().await {
            let ((batch_from, head, logs, inputs), prepared) = fetched?;
            let prepared = prepared.map_err(store_error)?;
            let to_ref = BlockRef {
                number: head.number.to(),
                hash: head.hash,
            };
            written += logs.len();
            let batch = Batch {
                from: batch_from,
                to: to_ref,
                logs,
                blocks: vec![to_ref],
                keep_from: to_ref.number.saturating_sub(keep),
                inputs,
            };
            self.store
                .apply(&batch, prepared)
                .await
                .map_err(store_error)?;
            last = Some(to_ref);
        }
        last.map(|l| (l, written))
            .ok_or(Error::EmptyRange { from, to })
    }

    /// Writes the unfinalised blocks `from..=to` with every block head
    /// chained to `parent`; `None` if the chain changed meanwhile.
    async fn tip(
        &mut self,
        parent: Option<BlockRef>,
        from: u64,
        to: u64,
    ) -> Result<Option<(BlockRef, usize)>> {
        use futures_util::TryStreamExt;
        let rpc = self.rpc.clone();
        // The heads in order, `in_flight` requests at a time (a tip after a
        // backfill is `finality_depth` blocks: one round trip each in turn
        // was most of a short backfill's RPC time).
        let heads: Vec<_> = stream::iter(from..=to)
            .map(|n| {
                let rpc = rpc.clone();
                async move { rpc.block_head(n).await }
            })
            .buffered(self.config.in_flight.max(1))
            .try_collect()
            .await?;
        let addresses = &self.config.addresses;
        let tip_hash = heads[heads.len() - 1].hash;
        let logs = rpc
            .retrying("following the tip", |i| {
                let rpc = rpc.clone();
                async move {
                    // The node must have the last block, or it would answer
                    // for fewer blocks than asked (a lagging node).
                    let last = rpc.block_head_at(i, to).await?;
                    if last.hash != tip_hash {
                        return Ok(None);
                    }
                    match rpc.logs_at(i, addresses, from, to).await {
                        Ok(logs) => Ok(Some(logs)),
                        // The tip is at most `finality_depth` blocks: a provider
                        // refusing it is misconfigured, not a reason to split.
                        Err(CallError::RangeLimit { message, .. }) => {
                            Err(CallError::Transient(message))
                        }
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        // Another endpoint sees another tip: the chain moved, start over.
        let Some(logs) = logs else { return Ok(None) };
        // Chain the heads to the checkpoint and to each other.
        let mut expected_parent = parent.map(|p| p.hash);
        for head in &heads {
            if expected_parent.is_some_and(|p| p != head.parent_hash) {
                return Ok(None);
            }
            expected_parent = Some(head.hash);
        }
        for log in &logs {
            let n = log.block_number.unwrap_or_default();
            let head = &heads[(n - from) as usize];
            if log.block_hash != Some(head.hash) {
                return Ok(None);
            }
        }
        let blocks: Vec<BlockRef> = heads
            .iter()
            .map(|h| BlockRef {
                number: h.number.to(),
                hash: h.hash,
            })
            .collect();
        let last = *blocks.last().ok_or(Error::EmptyRange { from, to })?;
        let count = logs.len();
        let inputs = fetch_inputs(&rpc, &self.config, &logs).await?;
        let batch = Batch {
            from,
            to: last,
            logs: sorted(logs),
            blocks,
            keep_from: to.saturating_sub(self.config.finality_depth),
            inputs,
        };
        let prepared = (self.store.preparer())(&batch.logs, &batch.inputs).map_err(store_error)?;
        self.store
            .apply(&batch, prepared)
            .await
            .map_err(store_error)?;
        Ok(Some((last, count)))
    }
}

fn store_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> Error {
    Error::Store {
        source: Box::new(e),
    }
}

fn sorted(mut logs: Vec<Log>) -> Vec<Log> {
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    logs
}

/// Fetches the logs of `from..=to` and the head of `to`, splitting the range
/// where a provider refuses it and adapting the shared range size.
///
/// Every sub-range is fetched from an endpoint that first proved it has block
/// `to` (with the same hash), so a lagging node that lacks `to` is skipped,
/// never believed. Sub-ranges already fetched survive a failover; the retry
/// budget counts consecutive failures.
async fn fetch_range(
    rpc: &Rpc,
    config: &FollowConfig,
    range: &AtomicU64,
    from: u64,
    to: u64,
) -> Result<(u64, BlockHead, Vec<Log>, HashMap<B256, TransactionInput>)> {
    let policy = rpc.retry_policy();
    let mut pending = vec![(from, to)];
    let mut logs = Vec::new();
    let mut split = false;
    let mut head: Option<BlockHead> = None;
    let mut proven: Option<usize> = None;
    let mut failures = 0u32;
    while let Some(&(a, b)) = pending.last() {
        let i = rpc.endpoint();
        let outcome = async {
            if proven != Some(i) {
                let h = rpc.block_head_at(i, to).await?;
                if head.is_some_and(|known| known.hash != h.hash) {
                    return Ok(Err(Error::InconsistentRange { from, to }));
                }
                head = Some(h);
                proven = Some(i);
            }
            rpc.logs_at(i, &config.addresses, a, b).await.map(Ok)
        }
        .await;
        let failure = match outcome {
            Ok(Ok(mut got)) => {
                pending.pop();
                logs.append(&mut got);
                failures = 0;
                continue;
            }
            Ok(Err(fatal)) => return Err(fatal),
            Err(CallError::RangeLimit { hint, message }) => match split_point(a, b, hint) {
                Some(cut) => {
                    pending.pop();
                    pending.push((cut + 1, b));
                    pending.push((a, cut));
                    split = true;
                    range.store((cut - a + 1).max(1), Ordering::Relaxed);
                    continue;
                }
                None => message,
            },
            Err(CallError::Transient(reason)) => reason,
        };
        tracing::warn!(endpoint = rpc.url(i), failures, %failure, "eth_getLogs range failed, retrying");
        failures += 1;
        if failures >= policy.attempts.max(1) {
            return Err(Error::RpcExhausted {
                during: "eth_getLogs",
                attempts: failures,
                last: failure,
            });
        }
        rpc.fail_over(i);
        tokio::time::sleep(policy.backoff(failures - 1)).await;
    }
    let head = match head {
        Some(h) => h,
        None => rpc.block_head(to).await?,
    };
    for log in &logs {
        if log.block_number == Some(to) && log.block_hash != Some(head.hash) {
            return Err(Error::InconsistentRange { from, to });
        }
    }
    if !split {
        let size = to - from + 1;
        let current = range.load(Ordering::Relaxed);
        if logs.len() < config.target_logs && size >= current {
            range.store(
                (current.saturating_mul(2)).min(config.max_range),
                Ordering::Relaxed,
            );
        } else if logs.len() > config.target_logs * 2 {
            range.store((current / 2).max(1), Ordering::Relaxed);
        }
    }
    let inputs = fetch_inputs(rpc, config, &logs).await?;
    Ok((from, head, sorted(logs), inputs))
}

/// A fetched range (first block, head of its last block, logs, calldata) with what the
/// store's preparer made of it.
type Prepared<P, E> = (
    (u64, BlockHead, Vec<Log>, HashMap<B256, TransactionInput>),
    Result<P, E>,
);

/// Fetches `start..=end` and prepares it, on a task of its own: its response is parsed, its
/// calldata fetched and its logs prepared (decoded) by the store's preparer on another core
/// while the store writes the range before it (a future inside `buffered` only runs when the
/// stream is polled, which the backfill loop does not do while it awaits `apply`). Dropping
/// the returned future (an error, a cancelled sync) aborts the task.
fn spawn_range<P: Send + 'static, E: Send + 'static>(
    rpc: Arc<Rpc>,
    config: FollowConfig,
    range: Arc<AtomicU64>,
    preparer: Preparer<P, E>,
    start: u64,
    end: u64,
) -> Spawned<Prepared<P, E>> {
    Spawned(tokio::spawn(async move {
        let fetched = fetch_range(&rpc, &config, &range, start, end).await?;
        let prepared = preparer(&fetched.2, &fetched.3);
        Ok((fetched, prepared))
    }))
}

/// A spawned range fetch, aborted when dropped unfinished.
struct Spawned<T>(tokio::task::JoinHandle<Result<T>>);

impl<T> Future for Spawned<T> {
    type Output = Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic())
                }
                // Only a runtime shutting down cancels the task.
                Err(Error::Rpc {
                    during: "eth_getLogs",
                    reason: "the range's fetch task was cancelled".into(),
                })
            })
        })
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The calldata of the transactions of `logs` that [`FollowConfig::calldata_of`]
/// names ([`Rpc::transaction_inputs`]: JSON-RPC batches, each retried like any other call).
async fn fetch_inputs(
    rpc: &Rpc,
    config: &FollowConfig,
    logs: &[Log],
) -> Result<HashMap<B256, TransactionInput>> {
    if config.calldata_of.is_empty() {
        return Ok(HashMap::new());
    }
    let wanted: Vec<B256> = logs
        .iter()
        .filter(|l| {
            l.topic0().is_some_and(|t| {
                config
                    .calldata_of
                    .iter()
                    .any(|(a, sig)| *a == l.address() && sig == t)
            })
        })
        .filter_map(|l| l.transaction_hash)
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    rpc.transaction_inputs(&wanted).await
}

/// Every log of `config.addresses` in `from..=to`, fetched like a backfill
/// (adaptive ranges, retries, failover) but without a store: for re-reading
/// the chain to check what a store holds. No calldata is fetched (see
/// [`fetch_logs_with_inputs`]).
pub async fn fetch_logs(rpc: &Rpc, config: &FollowConfig, from: u64, to: u64) -> Result<Vec<Log>> {
    let config = FollowConfig {
        calldata_of: Vec::new(),
        ..config.clone()
    };
    Ok(fetch_logs_with_inputs(rpc, &config, from, to).await?.0)
}

/// [`fetch_logs`] with the calldata [`FollowConfig::calldata_of`] names, as
/// a backfill hands it to the store.
pub async fn fetch_logs_with_inputs(
    rpc: &Rpc,
    config: &FollowConfig,
    from: u64,
    to: u64,
) -> Result<(Vec<Log>, HashMap<B256, TransactionInput>)> {
    let range = AtomicU64::new(config.initial_range.max(1));
    let mut logs = Vec::new();
    let mut inputs = HashMap::new();
    let mut start = from;
    while start <= to {
        let size = range.load(Ordering::Relaxed).max(1);
        let end = start.saturating_add(size - 1).min(to);
        let (_, _, mut got, more) = fetch_range(rpc, config, &range, start, end).await?;
        logs.append(&mut got);
        inputs.extend(more);
        start = end + 1;
    }
    Ok((logs, inputs))
}

/// Where to cut a refused range `a..=b`: the provider's hint if it is inside
/// and smaller, else the middle; `None` for a single block (nothing to split).
fn split_point(a: u64, b: u64, hint: Option<RangeHint>) -> Option<u64> {
    if a >= b {
        return None;
    }
    let middle = a + (b - a) / 2;
    let cut = match hint {
        Some(RangeHint::Range { from, to }) if from == a && to >= a && to < b => to,
        Some(RangeHint::MaxBlocks(n)) if n > 0 && a.saturating_add(n - 1) < b => a + n - 1,
        _ => middle,
    };
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_hints_inside_the_range_only() {
        assert_eq!(split_point(10, 10, None), None);
        assert_eq!(split_point(10, 20, None), Some(15));
        assert_eq!(
            split_point(10, 20, Some(RangeHint::Range { from: 10, to: 12 })),
            Some(12)
        );
        // A hint for another start, or not smaller, falls back to halving.
        assert_eq!(
            split_point(10, 20, Some(RangeHint::Range { from: 0, to: 12 })),
            Some(15)
        );
        assert_eq!(
            split_point(10, 20, Some(RangeHint::Range { from: 10, to: 20 })),
            Some(15)
        );
        assert_eq!(split_point(10, 20, Some(RangeHint::MaxBlocks(3))), Some(12));
        assert_eq!(
            split_point(10, 20, Some(RangeHint::MaxBlocks(11))),
            Some(15)
        );
        assert_eq!(split_point(10, 11, Some(RangeHint::MaxBlocks(1))), Some(10));
    }
}
