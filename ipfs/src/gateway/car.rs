//! `application/vnd.ipld.car` responses: a CAR v1 stream in DFS order without duplicates.
//!
//! The root is read before the status is sent (404 when it is missing); the rest of the DAG is
//! walked lazily by [`crate::traverse::blocks_for`] on a blocking thread and written through a
//! bounded channel into the response body, so memory stays at a few blocks whatever the file
//! size. A child block missing mid-stream ends the stream early (spec: "Streaming and Missing
//! Child Blocks"); the client sees an incomplete CAR.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use cid::Cid;
use tokio::sync::{mpsc, oneshot};

use super::Ctx;
use super::block::{load, not_modified_response};
use super::errors::GatewayError;
use super::headers::{car_etag, insert_car, insert_common, not_modified};
use super::limit::Slot;
use super::request::CarRequest;
use crate::car::CarWriter;
use crate::traverse::{DagScope, blocks_for};
use crate::{Blockstore, DAG_PB, Error, RAW, decode_dag_pb, decode_unixfs};

/// Pieces queued between the traversal thread and the response body: a block and its framing
/// are two pieces, so this keeps up to four blocks (1 MiB of 256 KiB blocks) read and checked
/// ahead of the socket.
const CHANNEL_CHUNKS: usize = 8;

/// Answer a CAR request.
pub(super) async fn serve(
    ctx: &Ctx<'_>,
    cid: Cid,
    car: CarRequest,
    permit: Slot,
    idle_timeout: Duration,
) -> Result<Response, GatewayError> {
    let etag = car_etag(&cid, &car);
    if not_modified(ctx.headers, &etag) {
        return Ok(not_modified_response(&cid, &etag));
    }
    let mut scope = car.scope;
    let mut range = None;
    if let Some(bytes) = car.range {
        // Negative offsets need the file size, which the root block declares.
        let root = load(&ctx.store, cid, ctx.only_if_cached).await?;
        match bytes.resolve(entity_size(&cid, &root))? {
            Some((from, to)) => range = Some((from, Some(to))),
            // A zero-length range is answered like dag-scope=block (spec, entity-bytes).
            None => scope = DagScope::Block,
        }
    }

    let body = if ctx.head_only {
        if !has(&ctx.store, cid).await? {
            return Err(missing(cid, ctx.only_if_cached));
        }
        Body::empty()
    } else {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (first_tx, first_rx) = oneshot::channel();
        let store = ctx.store.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            produce(
                &store,
                cid,
                scope,
                range,
                first_tx,
                BodySender {
                    tx,
                    handle,
                    idle_timeout,
                },
            );
        });
        match first_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(GatewayError::Internal("car producer ended early".into())),
        }
        Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    };
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    insert_common(headers, &cid, &etag);
    insert_car(headers, &cid);
    Ok(resp)
}

/// The size of the file (entity) under a root block: a raw block's length, or UnixFS `filesize`.
fn entity_size(cid: &Cid, root: &[u8]) -> u64 {
    let len = root.len() as u64;
    match cid.codec() {
        RAW => len,
        DAG_PB => decode_dag_pb(root, crate::Limits::default().max_links_per_node)
            .ok()
            .and_then(|node| {
                node.data
                    .and_then(|d| decode_unixfs(d, node.links.len()).ok())
            })
            .and_then(|fs| fs.filesize.or_else(|| fs.data.map(|d| d.len() as u64)))
            .unwrap_or(0),
        _ => 0,
    }
}

async fn has(store: &Blockstore, cid: Cid) -> Result<bool, GatewayError> {
    if cid.hash().code() == 0 {
        return Ok(true);
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.has(&cid))
        .await
        .map_err(|e| GatewayError::Internal(format!("block reader task: {e}")))?
        .map_err(|e| GatewayError::Internal(format!("checking {cid}: {e}")))
}

fn missing(cid: Cid, only_if_cached: bool) -> GatewayError {
    if only_if_cached {
        GatewayError::NotCached(cid)
    } else {
        GatewayError::NotFound(cid)
    }
}

/// Walk the DAG and write the CAR; runs on a blocking thread.
///
/// Reports the root's fate through `first` before writing anything, so the handler can still
/// answer 404; afterwards errors can only cut the stream.
fn produce(
    store: &Blockstore,
    root: Cid,
    scope: DagScope,
    range: Option<(u64, Option<u64>)>,
    first: oneshot::Sender<Result<(), GatewayError>>,
    mut out: BodySender,
) {
    // `bafkqaaa` and other identity CIDs: a CAR with the root in its header and no blocks
    // (spec, probe paths). Otherwise the root must be readable before the 200 goes out.
    let identity_probe = root.hash().code() == 0;
    let mut blocks = (!identity_probe).then(|| blocks_for(store, &root, scope, range));
    let head = match blocks.as_mut().map(Iterator::next) {
        None => None,
        Some(Some(Ok(block))) => Some(block),
        Some(Some(Err(e))) => {
            let _ = first.send(Err(classify(root, e)));
            return;
        }
        Some(None) => {
            let _ = first.send(Err(GatewayError::Internal(format!(
                "empty traversal of {root}"
            ))));
            return;
        }
    };
    if first.send(Ok(())).is_err() {
        return;
    }
    let result = (|| -> Result<(), Error> {
        // The header, then each section as its framing and the block itself: the block read
        // from the store goes into the body as it is, without being copied into a buffer.
        let header = CarWriter::new(Vec::new(), &[root])?.finish()?;
        out.send(Bytes::from(header))?;
        for block in head.into_iter().map(Ok).chain(blocks.into_iter().flatten()) {
            let (cid, data) = block?;
            out.send(section_prefix(&cid, data.len()))?;
            out.send(Bytes::from(data))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(%root, error = %e, "car stream cut short");
        // An error item makes hyper abort the response instead of ending it cleanly.
        let _ = out.handle.block_on(
            out.tx
                .send_timeout(Err(std::io::Error::other(e.to_string())), out.idle_timeout),
        );
    }
}

/// A CAR section's framing: the varint length of CID + block, then the CID's bytes.
fn section_prefix(cid: &Cid, block_len: usize) -> Bytes {
    let cid_bytes = cid.to_bytes();
    let mut prefix = Vec::with_capacity(cid_bytes.len() + 10);
    let mut len = (cid_bytes.len() + block_len) as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            prefix.push(byte);
            break;
        }
        prefix.push(byte | 0x80);
    }
    prefix.extend_from_slice(&cid_bytes);
    Bytes::from(prefix)
}

/// The handler's view of a traversal error on the root.
fn classify(root: Cid, e: Error) -> GatewayError {
    match e {
        Error::Blockstore(crate::BlockstoreError::NotFound { cid }) if cid == root => {
            GatewayError::NotFound(root)
        }
        e => GatewayError::Internal(format!("walking {root}: {e}")),
    }
}

/// Sends pieces of the body; blocks (on this blocking thread) while the client is slow, and
/// fails when it has taken nothing for `idle_timeout` or went away. At most
/// [`CHANNEL_CHUNKS`] pieces (framing or whole blocks) wait in the channel.
struct BodySender {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    handle: tokio::runtime::Handle,
    idle_timeout: Duration,
}

impl BodySender {
    fn send(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.handle
            .block_on(self.tx.send_timeout(Ok(chunk), self.idle_timeout))
            .map_err(|e| match e {
                mpsc::error::SendTimeoutError::Timeout(_) => std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client took no data within the idle timeout",
                ),
                mpsc::error::SendTimeoutError::Closed(_) => {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_cid;

    #[test]
    fn sections_frame_as_the_car_writer_does() {
        // Lengths with one-, two- and three-byte varints.
        let blocks: Vec<Vec<u8>> = [1usize, 90, 200, 300 * 1024]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
            .collect();
        let cids: Vec<Cid> = blocks
            .iter()
            .map(|b| block_cid(cid::Version::V1, RAW, b))
            .collect();
        let mut writer = CarWriter::new(Vec::new(), &cids[..1]).unwrap();
        let mut framed = CarWriter::new(Vec::new(), &cids[..1])
            .unwrap()
            .finish()
            .unwrap();
        for (cid, block) in cids.iter().zip(&blocks) {
            writer.write_block(cid, block).unwrap();
            framed.extend_from_slice(&section_prefix(cid, block.len()));
            framed.extend_from_slice(block);
        }
        assert_eq!(framed, writer.finish().unwrap());
    }
}
