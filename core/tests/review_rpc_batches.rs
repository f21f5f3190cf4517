//! Second engineer's adversarial review of the batched calldata fetch
//! (`Rpc::transaction_inputs`, `parse_batch`, `parse_response`; commit 57bd017).
//!
//! A small hand-written HTTP/1.1 server (tokio `TcpListener`) plays a lying or
//! broken node; every test drives the real `otaledger_core::follow::rpc::Rpc`
//! against it and checks the client's answer: either the right calldata for
//! every asked hash, or an error, within a bounded time and without a panic.
//! Tests marked `// FOUND:` showed a defect of 57bd017 (they failed on it) and pass since the
//! fix: each answer's transaction hash is checked against the asked one, and answers and
//! transactions in array form are refused.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::primitives::{B256, keccak256};
use otaledger_core::follow::rpc::{INPUTS_PER_BATCH, RetryPolicy, Rpc};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the hostile node does with one request.
enum Reply {
    /// An HTTP response with this status and body.
    Http(u16, String),
    /// Accepts the request and never answers.
    Hang,
    /// Sends headers promising a large body, then one byte every 50 ms forever.
    Drip,
    /// Promises more bytes than it sends, then closes the connection.
    Truncated(String),
    /// A 200 answer without `Content-Length`: the body, then the connection closes.
    Unsized(String),
}

type Handler = dyn Fn(usize, &Value) -> Reply + Send + Sync;

/// A running hostile node: its URL and every request body it received.
struct Node {
    url: String,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Node {
    fn requests(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }
}

async fn node(handler: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler: Arc<Handler> = Arc::new(handler);
    let server_log = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, handler) = (server_log.clone(), handler.clone());
            tokio::spawn(async move {
                let _ = connection(stream, log, handler).await;
            });
        }
    });
    Node { url, log }
}

async fn connection(
    mut stream: TcpStream,
    log: Arc<Mutex<Vec<Value>>>,
    handler: Arc<Handler>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request: Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
    let number = {
        let mut log = log.lock().unwrap();
        log.push(request.clone());
        log.len() - 1
    };
    let reply = handler(number, &request);
    let head = |status: u16, length: usize| {
        format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
        )
    };
    match reply {
        Reply::Http(status, body) => {
            stream
                .write_all(head(status, body.len()).as_bytes())
                .await?;
            stream.write_all(body.as_bytes()).await?;
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Drip => {
            stream.write_all(head(200, 10_000_000).as_bytes()).await?;
            stream.write_all(b"[").await?;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stream.write_all(b" ").await?;
            }
        }
        Reply::Unsized(body) => {
            stream
                .write_all(
                    b"HTTP/1.1 200 X\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
                )
                .await?;
            stream.write_all(body.as_bytes()).await?;
        }
        Reply::Truncated(body) => {
            stream
                .write_all(head(200, body.len() + 100).as_bytes())
                .await?;
            stream.write_all(body.as_bytes()).await?;
        }
    }
    stream.shutdown().await
}

/// Transaction number `i` of the tests: a real signed EIP-1559 transaction (nonce `i`) whose
/// calldata is `i` as 8 bytes, so a mix-up shows; its hash and the `eth_getTransactionByHash`
/// object a node sends for it (the client re-encodes and re-hashes the object's signed fields).
fn numbered(i: u64) -> (B256, Value) {
    use alloy::signers::local::PrivateKeySigner;
    let envelope = envelope_of(Kind::Eip1559, &i.to_be_bytes(), i);
    let from = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42))
        .unwrap()
        .address();
    let hash = *envelope.tx_hash();
    let tx = alloy::rpc::types::Transaction {
        inner: alloy::consensus::transaction::Recovered::new_unchecked(envelope, from),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: None,
        block_timestamp: None,
    };
    (hash, serde_json::to_value(tx).unwrap())
}

/// Transactions 0..300 of [`numbered`], by hash (`0x…`, lowercase): their number and object.
fn numbered_by_hash() -> &'static std::collections::HashMap<String, (u64, Value)> {
    static MAP: std::sync::OnceLock<std::collections::HashMap<String, (u64, Value)>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        (0..300)
            .map(|i| {
                let (hash, object) = numbered(i);
                (format!("{hash:#x}"), (i, object))
            })
            .collect()
    })
}

/// Hash number `i` of the tests (a real transaction's: [`numbered`]).
fn h(i: u64) -> B256 {
    numbered(i).0
}

/// The honest transaction object of `hash`, one of [`numbered_by_hash`].
fn tx_of(hash: &str) -> Value {
    numbered_by_hash()
        .get(&hash.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("{hash} is no numbered transaction"))
        .1
        .clone()
}

/// The hash a call asks for.
fn asked(call: &Value) -> String {
    call["params"][0].as_str().unwrap().to_owned()
}

/// The honest answer to one call. These nodes' transactions are made up (their hashes are no
/// signed transaction's), so they have no `eth_getRawTransactionByHash` ("method not found"):
/// the client then asks `eth_getTransactionByHash`, the path these tests attack
/// (`raw_transactions_*` below attack the raw path with real signed transactions).
fn honest_item(call: &Value) -> Value {
    if call["method"] == "eth_getRawTransactionByHash" {
        return json!({"jsonrpc": "2.0", "id": call["id"],
            "error": {"code": -32601, "message": "the method eth_getRawTransactionByHash does not exist"}});
    }
    json!({"jsonrpc": "2.0", "id": call["id"], "result": tx_of(&asked(call))})
}

/// The requests asking `eth_getTransactionByHash` (a batch, or one call).
fn full_requests(requests: Vec<Value>) -> Vec<Value> {
    let method = |r: &Value| match r {
        Value::Array(calls) => calls.first().map(|c| c["method"].clone()),
        call => Some(call["method"].clone()),
    };
    requests
        .into_iter()
        .filter(|r| method(r) == Some(json!("eth_getTransactionByHash")))
        .collect()
}

/// The honest answer to a request (a batch or a single call).
fn honest(request: &Value) -> Reply {
    let body = match request {
        Value::Array(calls) => Value::Array(calls.iter().map(honest_item).collect()),
        call => honest_item(call),
    };
    Reply::Http(200, body.to_string())
}

fn rpc(urls: Vec<String>, attempts: u32, timeout: Duration) -> Rpc {
    Rpc::new(
        urls,
        timeout,
        RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
    )
    .unwrap()
}

fn quick(node: &Node) -> Rpc {
    rpc(vec![node.url.clone()], 3, Duration::from_secs(5))
}

/// `hashes` fetched; every answer must be the asked hash's own calldata.
async fn fetch_checked(rpc: &Rpc, hashes: &[B256]) -> otaledger_core::Result<()> {
    let got = rpc.transaction_inputs(hashes).await?;
    for hash in hashes {
        let tx = got
            .get(hash)
            .expect("an asked hash missing from an Ok answer");
        let number = numbered_by_hash()[&format!("{hash:#x}")].0;
        assert_eq!(
            tx.input.as_ref(),
            number.to_be_bytes().as_slice(),
            "calldata of another transaction accepted for {hash}"
        );
    }
    let mut distinct = hashes.to_vec();
    distinct.sort();
    distinct.dedup();
    assert_eq!(got.len(), distinct.len(), "hashes nobody asked for");
    Ok(())
}

/// Applies `f` to the items of a batch answer (single calls answered honestly).
fn batch_tampered(
    f: impl Fn(&mut Vec<Value>) + Send + Sync + 'static,
) -> impl Fn(usize, &Value) -> Reply + Send + Sync + 'static {
    move |_, request| match request {
        Value::Array(calls) => {
            let mut items: Vec<Value> = calls.iter().map(honest_item).collect();
            f(&mut items);
            Reply::Http(200, Value::Array(items).to_string())
        }
        _ => honest(request),
    }
}

/// Expects an error (not a panic, not an Ok) from a batch of three.
async fn refused(node: Node, what: &str) {
    let rpc = quick(&node);
    let hashes = [h(1), h(2), h(3)];
    match fetch_checked(&rpc, &hashes).await {
        Err(_) => {}
        Ok(()) => panic!("{what}: accepted"),
    }
    assert!(!node.requests().is_empty());
}

#[tokio::test]
async fn honest_node_baseline_batches_of_100_duplicates_asked_once() {
    let node = node(|_, r| honest(r)).await;
    let rpc = quick(&node);
    let mut hashes: Vec<B256> = (0..250).map(h).collect();
    hashes.extend((0..250).map(h)); // every hash twice
    fetch_checked(&rpc, &hashes).await.unwrap();
    let requests = full_requests(node.requests());
    assert_eq!(requests.len(), 3, "250 distinct hashes: three batches");
    let mut seen: Vec<String> = requests
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(asked))
        .collect();
    assert!(
        requests
            .iter()
            .all(|r| r.as_array().unwrap().len() <= INPUTS_PER_BATCH)
    );
    seen.sort();
    let n = seen.len();
    seen.dedup();
    assert_eq!((n, seen.len()), (250, 250), "each hash asked exactly once");
}

#[tokio::test]
async fn empty_hash_list_asks_nothing() {
    let node = node(|_, r| honest(r)).await;
    let rpc = quick(&node);
    assert!(rpc.transaction_inputs(&[]).await.unwrap().is_empty());
    assert!(node.requests().is_empty());
}

#[tokio::test]
async fn only_duplicates_of_one_hash_is_asked_once() {
    let node = node(|_, r| honest(r)).await;
    let rpc = quick(&node);
    fetch_checked(&rpc, &[h(7), h(7), h(7)]).await.unwrap();
    // One batch of one raw call (answered "no such method"), then one of one object call.
    let requests = node.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for r in &requests {
        assert_eq!(r.as_array().map(Vec::len), Some(1), "{r}");
    }
}

// FOUND (fixed): a node (or a batch-splitting proxy / load balancer that renumbers ids)
// answering id 0 with the transaction of the hash asked as id 1, and id 1 with
// that of id 0, passes every id check; the client files each calldata under the
// wrong hash although the answers carry their own `hash` field, which is never
// compared with the asked hash.
#[tokio::test]
async fn swapped_answers_between_two_hashes_are_refused() {
    let node = node(batch_tampered(|items| {
        let (r0, r1) = (items[0]["result"].clone(), items[1]["result"].clone());
        items[0]["result"] = r1;
        items[1]["result"] = r0;
    }))
    .await;
    let rpc = quick(&node);
    let result = fetch_checked(&rpc, &[h(1), h(2), h(3)]).await;
    assert!(result.is_err(), "swapped answers must not be accepted");
}

// FOUND (fixed): the same mix-up made the other way: results left in request order but
// the ids of the first two answers exchanged (what a proxy that splits a batch
// and renumbers its ids may do). Every id is present once, so it is accepted.
#[tokio::test]
async fn swapped_ids_are_refused() {
    let node = node(batch_tampered(|items| {
        items[0]["id"] = json!(1);
        items[1]["id"] = json!(0);
    }))
    .await;
    let rpc = quick(&node);
    assert!(fetch_checked(&rpc, &[h(1), h(2), h(3)]).await.is_err());
}

// FOUND (fixed): the call-by-call path (one hash, or an endpoint without batches) has the
// same gap: a node answering with another transaction is believed.
#[tokio::test]
async fn a_single_call_answered_with_another_transaction_is_refused() {
    let other = h(99).to_string();
    let node = node(move |_, request| {
        let mut item = honest_item(request);
        item["result"] = tx_of(&other);
        Reply::Http(200, item.to_string())
    })
    .await;
    let rpc = quick(&node);
    assert!(fetch_checked(&rpc, &[h(1)]).await.is_err());
}

#[tokio::test]
async fn duplicate_ids_are_refused() {
    refused(
        node(batch_tampered(|items| items[2]["id"] = json!(0))).await,
        "id 0 twice, id 2 missing",
    )
    .await;
}

#[tokio::test]
async fn a_duplicated_key_inside_an_answer_is_refused() {
    let node = node(|_, request| match request {
        Value::Array(calls) => {
            let items: Vec<String> = calls
                .iter()
                .map(|c| {
                    format!(
                        r#"{{"id":{},"result":{},"result":{}}}"#,
                        c["id"],
                        tx_of(&asked(c)),
                        tx_of(&h(99).to_string())
                    )
                })
                .collect();
            Reply::Http(200, format!("[{}]", items.join(",")))
        }
        _ => honest(request),
    })
    .await;
    refused(node, "two `result` keys").await;
}

#[tokio::test]
async fn ids_as_strings_huge_negative_fractional_or_null_are_refused() {
    for bad in [
        json!("0"),
        json!("0x0"),
        json!(u64::MAX),
        json!(1u64 << 32),
        json!(3),
        json!(-1),
        json!(0.0),
        json!(1e300),
        Value::Null,
        json!([0]),
        json!({"id": 0}),
    ] {
        let b = bad.clone();
        refused(
            node(batch_tampered(move |items| items[0]["id"] = b.clone())).await,
            &format!("id {bad}"),
        )
        .await;
    }
    // 2^64 and beyond: not representable as u64.
    let node = node(|_, request| match request {
        Value::Array(calls) => {
            let body = Value::Array(calls.iter().map(honest_item).collect()).to_string();
            Reply::Http(
                200,
                body.replacen(r#""id":0"#, r#""id":18446744073709551616"#, 1),
            )
        }
        _ => honest(request),
    })
    .await;
    refused(node, "id 2^64").await;
}

#[tokio::test]
async fn too_many_or_too_few_answers_are_refused() {
    // 100 answers to a batch of 3 (ids 0..100).
    let node100 = node(|_, request| match request {
        Value::Array(calls) => {
            let items: Vec<Value> = (0..100)
                .map(|id| json!({"id": id, "result": tx_of(&asked(&calls[id % calls.len()]))}))
                .collect();
            Reply::Http(200, Value::Array(items).to_string())
        }
        _ => honest(request),
    })
    .await;
    refused(node100, "100 answers to 3").await;
    refused(
        node(batch_tampered(|items| {
            items.pop();
        }))
        .await,
        "2 answers to 3",
    )
    .await;
    refused(
        node(batch_tampered(|items| items.clear())).await,
        "0 answers to 3",
    )
    .await;
}

#[tokio::test]
async fn nested_arrays_are_refused_without_overflowing_the_stack() {
    refused(
        node(|_, request| match request {
            Value::Array(_) => {
                let Reply::Http(_, body) = honest(request) else {
                    unreachable!()
                };
                Reply::Http(200, format!("[{body}]"))
            }
            _ => honest(request),
        })
        .await,
        "the batch answer inside an array",
    )
    .await;
    refused(
        node(|_, request| match request {
            Value::Array(_) => Reply::Http(200, "[".repeat(200_000) + &"]".repeat(200_000)),
            _ => honest(request),
        })
        .await,
        "200,000 nested arrays",
    )
    .await;
    refused(
        node(batch_tampered(|items| {
            let mut deep = json!(null);
            for _ in 0..100 {
                deep = json!([deep]);
            }
            items[1]["error"] = json!({"code": 1, "message": "x", "data": deep});
        }))
        .await,
        "a deep error",
    )
    .await;
}

// FOUND (minor, hardening; fixed): `parse_response` refuses a non-object body because
// "serde would also read a struct from an array", but `parse_batch`'s items and
// every `TransactionInput` are derived structs too: the positional form
// `[[id, result], ...]` with `[to, input]` transactions — no JSON-RPC node ever
// sends that — is accepted as a valid batch answer.
#[tokio::test]
async fn answers_and_transactions_in_positional_array_form_are_refused() {
    let node = node(|_, request| match request {
        Value::Array(calls) => {
            let items: Vec<Value> = calls
                .iter()
                .map(|c| {
                    json!([
                        c["id"],
                        ["0x00000000000000000000000000000000000000aa", asked(c)]
                    ])
                })
                .collect();
            Reply::Http(200, Value::Array(items).to_string())
        }
        _ => honest(request),
    })
    .await;
    refused(node, "positional answers").await;
}

#[tokio::test]
async fn results_of_the_wrong_type_are_refused() {
    for bad in [
        json!(7),
        json!("0x01"),
        json!([]),
        json!(true),
        json!({}),
        json!({"to": "0x00000000000000000000000000000000000000aa"}),
        json!({"to": "0x00000000000000000000000000000000000000aa", "input": 5}),
        json!({"to": "0x00000000000000000000000000000000000000aa", "input": "0x0"}),
        json!({"to": "0xaa", "input": "0x01"}),
        json!({"to": "0x00000000000000000000000000000000000000aa", "input": "zz"}),
    ] {
        let b = bad.clone();
        refused(
            node(batch_tampered(move |items| items[1]["result"] = b.clone())).await,
            &format!("result {bad}"),
        )
        .await;
    }
    // A missing result, `null` (unknown transaction) and an error item fail the batch.
    refused(
        node(batch_tampered(|items| {
            items[1].as_object_mut().unwrap().remove("result");
        }))
        .await,
        "no result",
    )
    .await;
    refused(
        node(batch_tampered(|items| items[1]["result"] = Value::Null)).await,
        "null result",
    )
    .await;
    refused(
        node(batch_tampered(|items| {
            items[1]["error"] = json!({"code": -32000, "message": "busy"})
        }))
        .await,
        "an error beside a result",
    )
    .await;
}

#[tokio::test]
async fn a_lagging_first_endpoint_fails_over_to_an_honest_one() {
    let lagging = node(batch_tampered(|items| items[2]["result"] = Value::Null)).await;
    let good = node(|_, r| honest(r)).await;
    let rpc = rpc(
        vec![lagging.url.clone(), good.url.clone()],
        3,
        Duration::from_secs(5),
    );
    fetch_checked(&rpc, &[h(1), h(2), h(3)]).await.unwrap();
    assert_eq!(full_requests(lagging.requests()).len(), 1);
    assert_eq!(full_requests(good.requests()).len(), 1);
}

#[tokio::test]
async fn an_object_under_429_or_500_is_retried_and_batching_kept() {
    for status in [429u16, 500, 502, 503] {
        let node = node(move |n, request| match request {
            Value::Array(_) if n == 0 => Reply::Http(
                status,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"slow down"}}"#
                    .into(),
            ),
            _ => honest(request),
        })
        .await;
        let rpc = quick(&node);
        fetch_checked(&rpc, &[h(1), h(2), h(3)]).await.unwrap();
        // The refused batch, its retry (answered "no raw method"), and the batch of
        // eth_getTransactionByHash.
        let requests = node.requests();
        assert_eq!(requests.len(), 3, "status {status}: {requests:?}");
        assert!(requests.iter().all(Value::is_array), "status {status}");
    }
}

#[tokio::test]
async fn an_array_under_an_error_status_is_not_believed() {
    let node = node(|_, request| {
        let Reply::Http(_, body) = honest(request) else {
            unreachable!()
        };
        Reply::Http(500, body)
    })
    .await;
    refused(node, "an honest-looking array under http 500").await;
}

#[tokio::test]
async fn an_endpoint_without_batches_is_asked_call_by_call_and_still_checked() {
    // Objects to batches (200 and 400): asked one call at a time, results right.
    for status in [200u16, 400] {
        let node = node(move |_, request| match request {
            Value::Array(_) => Reply::Http(
                status,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batch not supported"}}"#.into(),
            ),
            _ => honest(request),
        })
        .await;
        let rpc = quick(&node);
        fetch_checked(&rpc, &[h(1), h(2), h(3)]).await.unwrap();
        fetch_checked(&rpc, &[h(4), h(5)]).await.unwrap();
        let requests = node.requests();
        // One refused batch, then only plain calls (the endpoint is remembered).
        assert_eq!(requests.iter().filter(|r| r.is_array()).count(), 1);
        assert_eq!(requests.len(), 1 + 5);
    }
    // An "object" answer to a batch that is in fact the answer to its first call
    // must not be taken for the batch.
    let node = node(|_, request| match request {
        Value::Array(calls) => honest(&calls[0]),
        _ => honest(request),
    })
    .await;
    fetch_checked(&quick(&node), &[h(1), h(2), h(3)])
        .await
        .unwrap();
}

#[tokio::test]
async fn an_endpoint_switching_between_arrays_and_objects_is_never_believed_wrongly() {
    // Arrays first, then objects to batches: the remaining batches go call by call.
    let node1 = node(|n, request| match request {
        Value::Array(_) if n == 0 => honest(request),
        Value::Array(_) => Reply::Http(200, r#"{"error":{"code":-32600,"message":"no"}}"#.into()),
        _ => honest(request),
    })
    .await;
    let hashes: Vec<B256> = (0..250).map(h).collect();
    fetch_checked(&quick(&node1), &hashes).await.unwrap();
    // Objects to batches, then arrays to the plain calls: refused.
    let node2 = node(|_, request| match request {
        Value::Array(_) => Reply::Http(200, r#"{"error":{"code":-32600,"message":"no"}}"#.into()),
        call => honest(&Value::Array(vec![call.clone()])),
    })
    .await;
    refused(node2, "arrays to plain calls").await;
}

#[tokio::test]
async fn truncated_bodies_are_refused() {
    refused(
        node(|_, request| {
            let Reply::Http(_, body) = honest(request) else {
                unreachable!()
            };
            Reply::Truncated(body)
        })
        .await,
        "fewer bytes than content-length",
    )
    .await;
    refused(
        node(|_, request| {
            let Reply::Http(_, body) = honest(request) else {
                unreachable!()
            };
            Reply::Http(200, body[..body.len() - 3].to_owned())
        })
        .await,
        "truncated json",
    )
    .await;
    refused(
        node(|_, _| Reply::Http(200, String::new())).await,
        "empty body",
    )
    .await;
    refused(
        node(|_, request| {
            let Reply::Http(_, body) = honest(request) else {
                unreachable!()
            };
            Reply::Http(200, format!("{body} trailing"))
        })
        .await,
        "trailing garbage",
    )
    .await;
}

#[tokio::test]
async fn an_enormous_valid_answer_is_refused_without_a_panic() {
    // ~24 MB: 100 answers to a batch of 3, each with a 240 kB junk field.
    let junk = "00".repeat(120_000);
    let node = node(move |_, request| match request {
        Value::Array(calls) => {
            let items: Vec<Value> = (0..100)
                .map(|id| {
                    json!({"id": id, "junk": junk, "result": tx_of(&asked(&calls[id % calls.len()]))})
                })
                .collect();
            Reply::Http(200, Value::Array(items).to_string())
        }
        _ => honest(request),
    })
    .await;
    let started = Instant::now();
    refused(node, "24 MB answer").await;
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn a_node_that_never_answers_is_ended_by_the_timeout() {
    let node = node(|_, _| Reply::Hang).await;
    let rpc = rpc(vec![node.url.clone()], 2, Duration::from_millis(300));
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        rpc.transaction_inputs(&[h(1), h(2), h(3)]),
    )
    .await
    .expect("the client hung");
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(node.requests().len(), 2);
}

#[tokio::test]
async fn a_node_dripping_its_body_forever_is_ended_by_the_timeout() {
    let node = node(|_, _| Reply::Drip).await;
    let rpc = rpc(vec![node.url.clone()], 2, Duration::from_millis(500));
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        rpc.transaction_inputs(&[h(1), h(2), h(3)]),
    )
    .await
    .expect("the client hung on a dripping body");
    assert!(result.is_err());
}

#[tokio::test]
async fn a_hanging_endpoint_without_batches_is_bounded_too() {
    // Batches refused, then every plain call hangs: one timeout per attempt,
    // not one per hash.
    let node = node(|_, request| match request {
        Value::Array(_) => Reply::Http(200, r#"{"error":{"code":-32600,"message":"no"}}"#.into()),
        _ => Reply::Hang,
    })
    .await;
    let rpc = rpc(vec![node.url.clone()], 2, Duration::from_millis(300));
    let hashes: Vec<B256> = (0..100).map(h).collect();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), rpc.transaction_inputs(&hashes))
        .await
        .expect("hung");
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

// Added with the fix for the reviewer's note that bodies were read whole: every answer is
// read up to a cap (`Rpc::with_max_response_bytes`, 64 MiB by default).

/// An answer above the cap is refused: by its `Content-Length` before a byte is read (a
/// node dripping a promised 10 MB is not waited for), or as it arrives when it has none.
#[tokio::test]
async fn answers_above_the_cap_are_refused_not_read_whole() {
    let big = format!("[{}]", " ".repeat(2 << 20));
    let sized = node(move |_, _| Reply::Http(200, big.clone())).await;
    let unsized_big = format!("[{}]", " ".repeat(2 << 20));
    let no_length = node(move |_, _| Reply::Unsized(unsized_big.clone())).await;
    let drip = node(|_, _| Reply::Drip).await;
    for node in [sized, no_length, drip] {
        let rpc = rpc(vec![node.url.clone()], 2, Duration::from_secs(60))
            .with_max_response_bytes(1 << 20);
        let err = rpc
            .transaction_inputs(&[h(1), h(2)])
            .await
            .expect_err("an answer above the cap");
        assert!(
            err.to_string().contains("larger than 1048576 bytes"),
            "{err}"
        );
    }
}

/// Too large an `eth_getLogs` answer is a range limit: the range is split until the answers
/// fit, so an honest node with a dense history is read in smaller ranges, never refused.
#[tokio::test]
async fn an_eth_get_logs_answer_above_the_cap_splits_its_range() {
    use otaledger_core::follow::{FollowConfig, fetch_logs};
    let node = node(|_, call| {
        let params = &call["params"][0];
        match call["method"].as_str().unwrap() {
            "eth_getBlockByNumber" => {
                let n = u64::from_str_radix(
                    call["params"][0].as_str().unwrap().trim_start_matches("0x"),
                    16,
                )
                .unwrap();
                let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {
                    "number": format!("{n:#x}"),
                    "hash": h(n),
                    "parentHash": h(n.wrapping_sub(1)),
                }});
                Reply::Http(200, answer.to_string())
            }
            "eth_getLogs" => {
                let from = params["fromBlock"].as_str().unwrap().to_owned();
                let to = params["toBlock"].as_str().unwrap().to_owned();
                if from == to {
                    Reply::Http(200, r#"{"jsonrpc":"2.0","id":1,"result":[]}"#.into())
                } else {
                    let pad = " ".repeat(2 << 20);
                    Reply::Http(
                        200,
                        format!(r#"{{"jsonrpc":"2.0","id":1,"result":[{pad}]}}"#),
                    )
                }
            }
            other => panic!("unexpected {other}"),
        }
    })
    .await;
    let rpc = quick(&node).with_max_response_bytes(1 << 20);
    let config = FollowConfig::new(vec![alloy::primitives::Address::repeat_byte(7)], 0);
    let logs = fetch_logs(&rpc, &config, 0, 3).await.unwrap();
    assert!(logs.is_empty());
    let ranges: Vec<(String, String)> = node
        .requests()
        .iter()
        .filter(|r| r["method"] == "eth_getLogs")
        .map(|r| {
            let p = &r["params"][0];
            (
                p["fromBlock"].as_str().unwrap().to_owned(),
                p["toBlock"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ranges.first().unwrap(),
        &("0x0".to_owned(), "0x3".to_owned())
    );
    for block in ["0x0", "0x1", "0x2", "0x3"] {
        assert!(
            ranges.contains(&(block.to_owned(), block.to_owned())),
            "{block} read alone: {ranges:?}"
        );
    }
}

// ---------------------------------------------------------------- raw transactions
//
// `eth_getRawTransactionByHash`, asked first: the answer is accepted only if its bytes hash to
// the asked hash and decode (alloy's checked EIP-2718 decoder) without bytes left over.

/// A real signed transaction: an EIP-1559 one (or a legacy one when `legacy`) to
/// `0x…aa` whose calldata is `calldata`. Returns its hash and its signed bytes.
fn signed_tx(calldata: &[u8], nonce: u64, legacy: bool) -> (B256, Vec<u8>) {
    use alloy::{
        consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy},
        eips::eip2718::Encodable2718,
        primitives::{Address, TxKind},
        signers::{SignerSync, local::PrivateKeySigner},
    };
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();
    let to = TxKind::Call(Address::repeat_byte(0xaa));
    let envelope: TxEnvelope = if legacy {
        let tx = TxLegacy {
            chain_id: Some(31337),
            nonce,
            gas_price: 1,
            gas_limit: 100_000,
            to,
            value: Default::default(),
            input: calldata.to_vec().into(),
        };
        let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
        tx.into_signed(sig).into()
    } else {
        let tx = TxEip1559 {
            chain_id: 31337,
            nonce,
            gas_limit: 100_000,
            max_fee_per_gas: 2,
            max_priority_fee_per_gas: 1,
            to,
            value: Default::default(),
            access_list: Default::default(),
            input: calldata.to_vec().into(),
        };
        let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
        tx.into_signed(sig).into()
    };
    let bytes = envelope.encoded_2718();
    assert_eq!(keccak256(&bytes), *envelope.tx_hash());
    (*envelope.tx_hash(), bytes)
}

/// A node answering `eth_getRawTransactionByHash` from `raw` (hash → `0x…` bytes, `null`
/// when unknown), passed through `tamper` (asked hash, honest answer → answer), and
/// `eth_getTransactionByHash` from `objects`.
fn raw_node(
    raw: Vec<(B256, Vec<u8>)>,
    objects: Vec<(B256, Value)>,
    tamper: impl Fn(&str, Value) -> Value + Send + Sync + 'static,
) -> impl Fn(usize, &Value) -> Reply + Send + Sync + 'static {
    let hex = |b: &[u8]| format!("0x{}", alloy::primitives::hex::encode(b));
    let raw: std::collections::HashMap<String, String> = raw
        .into_iter()
        .map(|(h, b)| (format!("{h:#x}"), hex(&b)))
        .collect();
    let objects: std::collections::HashMap<String, Value> = objects
        .into_iter()
        .map(|(h, v)| (format!("{h:#x}"), v))
        .collect();
    move |_, request| {
        let answer = |call: &Value| {
            let hash = asked(call);
            let result = match call["method"].as_str().unwrap() {
                "eth_getRawTransactionByHash" => tamper(
                    &hash,
                    raw.get(&hash).map(|b| json!(b)).unwrap_or(Value::Null),
                ),
                _ => objects.get(&hash).cloned().unwrap_or(Value::Null),
            };
            json!({"jsonrpc": "2.0", "id": call["id"], "result": result})
        };
        let body = match request {
            Value::Array(calls) => Value::Array(calls.iter().map(answer).collect()),
            call => answer(call),
        };
        Reply::Http(200, body.to_string())
    }
}

/// The calldata `rpc` returns for `hashes`, or its error.
async fn inputs_of(
    rpc: &Rpc,
    hashes: &[B256],
) -> otaledger_core::Result<Vec<(Option<alloy::primitives::Address>, Vec<u8>)>> {
    let got = rpc.transaction_inputs(hashes).await?;
    Ok(hashes
        .iter()
        .map(|h| (got[h].to, got[h].input.to_vec()))
        .collect())
}

#[tokio::test]
async fn raw_transactions_of_either_kind_are_decoded_and_no_object_is_asked() {
    let txs: Vec<(B256, Vec<u8>)> = (0..5)
        .map(|i| signed_tx(&[i as u8; 3], i, i % 2 == 0))
        .collect();
    let node = node(raw_node(txs.clone(), Vec::new(), |_, v| v)).await;
    let hashes: Vec<B256> = txs.iter().map(|(h, _)| *h).collect();
    let got = inputs_of(&quick(&node), &hashes).await.unwrap();
    for (i, (to, input)) in got.iter().enumerate() {
        assert_eq!(*to, Some(alloy::primitives::Address::repeat_byte(0xaa)));
        assert_eq!(input, &vec![i as u8; 3]);
    }
    assert!(full_requests(node.requests()).is_empty());
}

#[tokio::test]
async fn raw_transactions_of_another_transaction_or_with_forged_calldata_are_refused() {
    let (a, a_bytes) = signed_tx(b"approval of A", 0, false);
    let (b, b_bytes) = signed_tx(b"approval of B", 1, false);
    let hex = |b: &[u8]| json!(format!("0x{}", alloy::primitives::hex::encode(b)));
    // B's bytes answered for A.
    let swapped = b_bytes.clone();
    let node_swap = node(raw_node(
        vec![(a, a_bytes.clone()), (b, b_bytes.clone())],
        Vec::new(),
        move |h, v| {
            if h == format!("{a:#x}") {
                hex(&swapped)
            } else {
                v
            }
        },
    ))
    .await;
    let err = inputs_of(&quick(&node_swap), &[a, b]).await.unwrap_err();
    assert!(err.to_string().contains("hashing to"), "{err}");
    // A's calldata rewritten inside its signed encoding (same length, still decodes).
    let mut forged = a_bytes.clone();
    let at = forged
        .windows(13)
        .position(|w| w == b"approval of A")
        .unwrap();
    forged[at..at + 13].copy_from_slice(b"approval of X");
    let node_forge = node(raw_node(
        vec![(a, a_bytes.clone())],
        Vec::new(),
        move |_, _| hex(&forged),
    ))
    .await;
    let err = inputs_of(&quick(&node_forge), &[a, b]).await.unwrap_err();
    assert!(err.to_string().contains("hashing to"), "{err}");
    // A lying first endpoint, an honest second: the truth, from the second.
    let honest = node(raw_node(
        vec![(a, a_bytes.clone()), (b, b_bytes.clone())],
        Vec::new(),
        |_, v| v,
    ))
    .await;
    let rpc = rpc(
        vec![node_swap.url.clone(), honest.url.clone()],
        3,
        Duration::from_secs(5),
    );
    let got = inputs_of(&rpc, &[a, b]).await.unwrap();
    assert_eq!(got[0].1, b"approval of A");
    assert_eq!(got[1].1, b"approval of B");
}

#[tokio::test]
async fn raw_bytes_that_hash_right_but_do_not_decode_exactly_are_refused() {
    let (_, good) = signed_tx(b"calldata", 0, false);
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0u8; 4]);
    let mut cut = good.clone();
    cut.truncate(good.len() - 10);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bytes after the transaction", trailing),
        ("does not decode", cut),
        ("does not decode", vec![0x02]),
        ("does not decode", vec![0xf8, 0xff, 0x01]),
        ("does not decode", Vec::new()),
    ];
    for (says, bytes) in cases {
        // The test picks the hash, so the bytes hash right and only decoding can refuse.
        let hash = keccak256(&bytes);
        let node = node(raw_node(vec![(hash, bytes.clone())], Vec::new(), |_, v| v)).await;
        let err = inputs_of(&quick(&node), &[hash]).await.unwrap_err();
        assert!(err.to_string().contains(says), "{bytes:02x?}: {err}");
    }
}

#[tokio::test]
async fn a_raw_transaction_of_an_unknown_type_is_asked_as_an_object_and_its_calldata_left_out() {
    // An L2's own transaction type (0x7e, a deposit): alloy's envelope does not know it, so
    // neither its bytes nor its object can be checked against its hash.
    let deposit = vec![0x7e, 0xc0];
    let hash = keccak256(&deposit);
    let (known, known_bytes) = signed_tx(b"known", 0, false);
    let object = json!({
        "hash": format!("{hash:#x}"),
        "type": "0x7e",
        "to": "0x00000000000000000000000000000000000000bb",
        "input": "0xd00d",
    });
    let node = node(raw_node(
        vec![(hash, deposit), (known, known_bytes)],
        vec![(hash, object)],
        |_, v| v,
    ))
    .await;
    let got = quick(&node)
        .transaction_inputs(&[hash, known])
        .await
        .unwrap();
    assert!(!got.contains_key(&hash), "unchecked calldata used: {got:?}");
    assert_eq!(got[&known].input.as_ref(), b"known");
    let full = full_requests(node.requests());
    assert_eq!(
        full.len(),
        1,
        "only the unknown type asked as an object: {full:?}"
    );
}

#[tokio::test]
async fn raw_answers_of_the_wrong_json_type_are_refused() {
    let (a, bytes) = signed_tx(b"x", 0, false);
    for wrong in [
        json!({"raw": "0x00"}),
        json!(["0x00"]),
        json!(7),
        json!("not hex"),
        json!(true),
    ] {
        let node = node(raw_node(
            vec![(a, bytes.clone())],
            Vec::new(),
            move |_, _| wrong.clone(),
        ))
        .await;
        let err = inputs_of(&quick(&node), &[a, h(1)]).await.unwrap_err();
        assert!(err.to_string().contains("0x-hex bytes"), "{err}");
    }
}

// ---- review of 141415a (raw calldata)
//
// A second engineer's attacks on the raw path of 141415a (`eth_getRawTransactionByHash`,
// `decode_raw`, the `no_raw` / `no_batches` fallbacks). Tests starting with `// FOUND` assert
// the secure behaviour and failed on 141415a (all four fixed in the next commit: objects are
// re-encoded and re-hashed, "method not found" counts only when every answer says it, an
// object answer to a batch means "no batches" only for -32600/-32601 or a message naming
// batches, and the decoded transaction's own hash must be the asked one); the others show an
// attack refused.

/// The kinds of signed transactions [`signed_kind`] makes.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Legacy without EIP-155 (v = 27/28).
    LegacyPre155,
    /// Legacy with EIP-155.
    Legacy155,
    Eip2930,
    Eip1559,
    /// EIP-4844 in its canonical (no sidecar) form.
    Eip4844,
    Eip7702,
    /// An EIP-1559 contract creation (no recipient).
    Create,
}

const ALL_KINDS: [Kind; 7] = [
    Kind::LegacyPre155,
    Kind::Legacy155,
    Kind::Eip2930,
    Kind::Eip1559,
    Kind::Eip4844,
    Kind::Eip7702,
    Kind::Create,
];

/// A real signed transaction of `kind` with `calldata`, as alloy's envelope.
fn envelope_of(kind: Kind, calldata: &[u8], nonce: u64) -> alloy::consensus::TxEnvelope {
    use alloy::{
        consensus::{SignableTransaction, TxEip1559, TxEip2930, TxEip4844, TxEip7702, TxLegacy},
        eips::eip7702::Authorization,
        primitives::{Address, TxKind, U256},
        signers::{SignerSync, local::PrivateKeySigner},
    };
    let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();
    let to = Address::repeat_byte(0xaa);
    let input: alloy::primitives::Bytes = calldata.to_vec().into();
    macro_rules! sign {
        ($tx:expr) => {{
            let tx = $tx;
            let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
            tx.into_signed(sig).into()
        }};
    }
    match kind {
        Kind::LegacyPre155 | Kind::Legacy155 => sign!(TxLegacy {
            chain_id: matches!(kind, Kind::Legacy155).then_some(31337),
            nonce,
            gas_price: 1,
            gas_limit: 100_000,
            to: TxKind::Call(to),
            value: U256::ZERO,
            input,
        }),
        Kind::Eip2930 => sign!(TxEip2930 {
            chain_id: 31337,
            nonce,
            gas_price: 1,
            gas_limit: 100_000,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        }),
        Kind::Eip1559 | Kind::Create => sign!(TxEip1559 {
            chain_id: 31337,
            nonce,
            gas_limit: 100_000,
            max_fee_per_gas: 2,
            max_priority_fee_per_gas: 1,
            to: if matches!(kind, Kind::Create) {
                TxKind::Create
            } else {
                TxKind::Call(to)
            },
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        }),
        Kind::Eip4844 => sign!(TxEip4844 {
            chain_id: 31337,
            nonce,
            gas_limit: 100_000,
            max_fee_per_gas: 2,
            max_priority_fee_per_gas: 1,
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            blob_versioned_hashes: vec![B256::repeat_byte(0x01)],
            max_fee_per_blob_gas: 1,
            input,
        }),
        Kind::Eip7702 => {
            let auth = Authorization {
                chain_id: U256::from(31337),
                address: Address::repeat_byte(0xcc),
                nonce: nonce + 1,
            };
            let auth_sig = signer.sign_hash_sync(&auth.signature_hash()).unwrap();
            sign!(TxEip7702 {
                chain_id: 31337,
                nonce,
                gas_limit: 100_000,
                max_fee_per_gas: 2,
                max_priority_fee_per_gas: 1,
                to,
                value: U256::ZERO,
                access_list: Default::default(),
                authorization_list: vec![auth.into_signed(auth_sig)],
                input,
            })
        }
    }
}

/// [`envelope_of`]'s hash and signed bytes.
fn signed_kind(kind: Kind, calldata: &[u8], nonce: u64) -> (B256, Vec<u8>) {
    use alloy::eips::eip2718::Encodable2718;
    let envelope = envelope_of(kind, calldata, nonce);
    let bytes = envelope.encoded_2718();
    assert_eq!(keccak256(&bytes), *envelope.tx_hash(), "{kind:?}");
    (*envelope.tx_hash(), bytes)
}

fn hex0x(b: &[u8]) -> String {
    format!("0x{}", alloy::primitives::hex::encode(b))
}

/// The `eth_getTransactionByHash` object a node would send for a real EIP-1559 transaction
/// (every field a client needs to re-encode and re-hash it), with `input` as given.
fn full_object_1559(hash: &B256, calldata: &[u8], nonce: u64, input: &[u8]) -> Value {
    use alloy::consensus::Transaction as _;
    let envelope = envelope_of(Kind::Eip1559, calldata, nonce);
    let alloy::consensus::TxEnvelope::Eip1559(signed) = &envelope else {
        unreachable!()
    };
    let sig = signed.signature();
    json!({
        "hash": format!("{hash:#x}"),
        "type": "0x2",
        "chainId": "0x7a69",
        "nonce": format!("{:#x}", envelope.nonce()),
        "gas": format!("{:#x}", envelope.gas_limit()),
        "maxFeePerGas": "0x2",
        "maxPriorityFeePerGas": "0x1",
        "to": "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "value": "0x0",
        "accessList": [],
        "input": hex0x(input),
        "r": format!("{:#x}", sig.r()),
        "s": format!("{:#x}", sig.s()),
        "yParity": if sig.v() { "0x1" } else { "0x0" },
        "v": if sig.v() { "0x1" } else { "0x0" },
    })
}

/// Requests asking `eth_getRawTransactionByHash` (a batch, or one call).
fn raw_requests(requests: Vec<Value>) -> Vec<Value> {
    let method = |r: &Value| match r {
        Value::Array(calls) => calls.first().map(|c| c["method"].clone()),
        call => Some(call["method"].clone()),
    };
    requests
        .into_iter()
        .filter(|r| method(r) == Some(json!("eth_getRawTransactionByHash")))
        .collect()
}

/// Applies `f` to the items of every raw batch answer of `raw_node(raw, objects, |_, v| v)`
/// (`f` gets the batch's number among all requests).
fn raw_batch_tampered(
    raw: Vec<(B256, Vec<u8>)>,
    objects: Vec<(B256, Value)>,
    f: impl Fn(usize, &mut Vec<Value>) + Send + Sync + 'static,
) -> impl Fn(usize, &Value) -> Reply + Send + Sync + 'static {
    let inner = raw_node(raw, objects, |_, v| v);
    move |n, request| {
        let reply = inner(n, request);
        match (request, reply) {
            (Value::Array(calls), Reply::Http(status, body))
                if calls
                    .first()
                    .map(|c| c["method"] == "eth_getRawTransactionByHash")
                    == Some(true) =>
            {
                let mut items: Vec<Value> = serde_json::from_str(&body).unwrap();
                f(n, &mut items);
                Reply::Http(status, Value::Array(items).to_string())
            }
            (_, reply) => reply,
        }
    }
}

#[tokio::test]
async fn raw_every_known_type_decodes_to_its_own_calldata_without_objects() {
    let txs: Vec<(B256, Vec<u8>)> = ALL_KINDS
        .iter()
        .enumerate()
        .map(|(i, kind)| signed_kind(*kind, format!("calldata {kind:?}").as_bytes(), i as u64))
        .collect();
    let node = node(raw_node(txs.clone(), Vec::new(), |_, v| v)).await;
    let hashes: Vec<B256> = txs.iter().map(|(h, _)| *h).collect();
    let got = inputs_of(&quick(&node), &hashes).await.unwrap();
    for (kind, (to, input)) in ALL_KINDS.iter().zip(&got) {
        assert_eq!(input, format!("calldata {kind:?}").as_bytes(), "{kind:?}");
        let expected_to = match kind {
            Kind::Create => None,
            _ => Some(alloy::primitives::Address::repeat_byte(0xaa)),
        };
        assert_eq!(*to, expected_to, "{kind:?}");
    }
    assert!(full_requests(node.requests()).is_empty());
}

#[tokio::test]
async fn raw_bytes_of_every_kind_under_a_swapped_or_forged_hash_are_refused() {
    // Every kind: its bytes answered for another transaction's hash (a proxy renumbering
    // ids); one byte of its calldata flipped.
    for (i, kind) in ALL_KINDS.into_iter().enumerate() {
        let (a, a_bytes) = signed_kind(kind, b"approval of A", 2 * i as u64);
        let (b, b_bytes) = signed_kind(kind, b"approval of B", 2 * i as u64 + 1);
        let swap = node(raw_batch_tampered(
            vec![(a, a_bytes.clone()), (b, b_bytes.clone())],
            Vec::new(),
            |_, items| {
                items[0]["id"] = json!(1);
                items[1]["id"] = json!(0);
            },
        ))
        .await;
        let err = inputs_of(&quick(&swap), &[a, b]).await.unwrap_err();
        assert!(err.to_string().contains("hashing to"), "{kind:?}: {err}");
        assert!(full_requests(swap.requests()).is_empty(), "{kind:?}");
        let mut forged = a_bytes.clone();
        let at = forged
            .windows(13)
            .position(|w| w == b"approval of A")
            .unwrap();
        forged[at + 12] = b'X';
        let forge = node(raw_node(vec![(a, a_bytes)], Vec::new(), move |_, _| {
            json!(hex0x(&forged))
        }))
        .await;
        let err = inputs_of(&quick(&forge), &[a]).await.unwrap_err();
        assert!(err.to_string().contains("hashing to"), "{kind:?}: {err}");
    }
}

/// A real EIP-4844 transaction's hash, canonical bytes and its network form
/// (`0x03 || rlp([tx_payload_body, blobs, commitments, proofs])`, with one blob).
fn blob_tx_with_network_form(calldata: &[u8]) -> (B256, Vec<u8>, Vec<u8>) {
    use alloy::rlp::{Encodable, Header};
    let (hash, canonical) = signed_kind(Kind::Eip4844, calldata, 0);
    let body = &canonical[1..];
    let blobs = vec![alloy::primitives::Bytes::from(vec![0u8; 131_072])];
    let commitments = vec![alloy::primitives::Bytes::from(vec![0xc0u8; 48])];
    let proofs = vec![alloy::primitives::Bytes::from(vec![0xc0u8; 48])];
    let mut tail = Vec::new();
    blobs.encode(&mut tail);
    commitments.encode(&mut tail);
    proofs.encode(&mut tail);
    let mut network = vec![0x03];
    Header {
        list: true,
        payload_length: body.len() + tail.len(),
    }
    .encode(&mut network);
    network.extend_from_slice(body);
    network.extend_from_slice(&tail);
    (hash, canonical, network)
}

#[tokio::test]
async fn raw_4844_in_network_form_answered_for_the_transactions_hash_is_refused() {
    let (hash, canonical, network) = blob_tx_with_network_form(b"blob calldata");
    // Answered for the transaction's hash: the bytes do not hash to it.
    let node1 = node(raw_node(
        vec![(hash, canonical)],
        Vec::new(),
        move |_, _| json!(hex0x(&network)),
    ))
    .await;
    let err = inputs_of(&quick(&node1), &[hash]).await.unwrap_err();
    assert!(err.to_string().contains("hashing to"), "{err}");
    assert!(full_requests(node1.requests()).is_empty());
}

// FOUND (fixed; low severity, defence in depth): `decode_raw` takes "the bytes hash to the asked
// hash" for "the bytes are the asked transaction", but `TxEnvelope` is
// `EthereumTxEnvelope<TxEip4844Variant>`, whose type-3 decoder also accepts the EIP-4844
// *network* form (with the blob sidecar). Those bytes hash to H' = keccak(network form), which
// is not the transaction's hash (that is keccak of the canonical form, `tx_hash()`): asked for
// H' (a hash only a lying log source would name), the client files the real transaction's
// calldata under a hash no transaction has. The decoded envelope's own hash tells: it must be
// the asked one (or decode with `EthereumTxEnvelope<TxEip4844>`, which refuses the sidecar).
#[tokio::test]
async fn raw_4844_network_form_is_not_accepted_under_its_own_keccak() {
    use alloy::{
        consensus::{EthereumTxEnvelope, TxEip4844, TxEnvelope},
        eips::eip2718::Decodable2718,
    };
    let (tx_hash, _, network) = blob_tx_with_network_form(b"blob calldata");
    let network_hash = keccak256(&network);
    // What alloy does with these bytes: `TxEnvelope` decodes them, as the transaction whose
    // hash is `tx_hash`, not `network_hash`; the no-sidecar envelope refuses them.
    let decoded = TxEnvelope::decode_2718_exact(&network).unwrap();
    assert_eq!(*decoded.tx_hash(), tx_hash);
    assert_ne!(tx_hash, network_hash);
    assert!(EthereumTxEnvelope::<TxEip4844>::decode_2718_exact(&network).is_err());
    let node = node(raw_node(
        vec![(network_hash, network)],
        Vec::new(),
        |_, v| v,
    ))
    .await;
    let got = inputs_of(&quick(&node), &[network_hash]).await;
    assert!(
        got.is_err(),
        "calldata of transaction {tx_hash} filed under {network_hash}: {got:?}"
    );
}

/// The signed fields of a real EIP-1559 transaction, each RLP-encoded on its own:
/// [chain_id, nonce, max_priority_fee, max_fee, gas_limit, to, value, input, access_list,
/// y_parity, r, s].
fn fields_1559(calldata: &[u8]) -> Vec<Vec<u8>> {
    use alloy::{consensus::TxEnvelope, rlp::Encodable};
    let TxEnvelope::Eip1559(signed) = envelope_of(Kind::Eip1559, calldata, 0) else {
        unreachable!()
    };
    let (tx, sig) = (signed.tx(), signed.signature());
    let enc = |f: &dyn Encodable| {
        let mut out = Vec::new();
        f.encode(&mut out);
        out
    };
    vec![
        enc(&tx.chain_id),
        enc(&tx.nonce),
        enc(&tx.max_priority_fee_per_gas),
        enc(&tx.max_fee_per_gas),
        enc(&tx.gas_limit),
        enc(&tx.to),
        enc(&tx.value),
        enc(&tx.input),
        enc(&tx.access_list),
        enc(&sig.v()),
        enc(&sig.r()),
        enc(&sig.s()),
    ]
}

/// `0x02 || list(fields)`, the list header minimal or with a length-of-length padded by one
/// zero byte.
fn typed_from_fields(fields: &[Vec<u8>], padded_header: bool) -> Vec<u8> {
    let payload: Vec<u8> = fields.concat();
    let mut out = vec![0x02];
    if padded_header {
        let len = (payload.len() as u32).to_be_bytes();
        let len: Vec<u8> = len.iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0xf7 + len.len() as u8 + 1);
        out.push(0);
        out.extend_from_slice(&len);
    } else {
        use alloy::rlp::Header;
        Header {
            list: true,
            payload_length: payload.len(),
        }
        .encode(&mut out);
    }
    out.extend_from_slice(&payload);
    out
}

#[tokio::test]
async fn raw_non_canonical_rlp_of_a_real_transaction_does_not_decode() {
    // Encodings of the same signed transaction other than the canonical one: each hashes to
    // another hash (the test asks for it), so accepting one would file calldata under a
    // hash no transaction has.
    let calldata = b"x";
    let fields = fields_1559(calldata);
    let canonical = typed_from_fields(&fields, false);
    assert_eq!(canonical, signed_kind(Kind::Eip1559, calldata, 0).1);
    let with = |i: usize, bytes: Vec<u8>| {
        let mut f = fields.clone();
        f[i] = bytes;
        typed_from_fields(&f, false)
    };
    let mut r_padded = fields[10].clone();
    assert_eq!(r_padded[0], 0xa0);
    r_padded[0] = 0xa1;
    r_padded.insert(1, 0);
    // The surgery itself is sound: the canonical bytes, rebuilt from the fields, are read.
    let node0 = node(raw_node(
        vec![(keccak256(&canonical), canonical.clone())],
        Vec::new(),
        |_, v| v,
    ))
    .await;
    let got = inputs_of(&quick(&node0), &[keccak256(&canonical)])
        .await
        .unwrap();
    assert_eq!(got[0].1, calldata);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nonce 0 as 0x00", with(1, vec![0x00])),
        (
            "chain id with a leading zero",
            with(0, vec![0x83, 0x00, 0x7a, 0x69]),
        ),
        ("gas limit with a leading zero", {
            let mut g = fields[4].clone();
            g[0] += 1;
            g.insert(1, 0);
            with(4, g)
        }),
        (
            "one-byte input in a string header",
            with(7, vec![0x81, b'x']),
        ),
        ("y parity 0/1 as 0x00/0x81 0x01", {
            let v = fields[9].clone();
            with(
                9,
                if v == [0x80] {
                    vec![0x00]
                } else {
                    vec![0x81, 0x01]
                },
            )
        }),
        ("r with a leading zero", with(10, r_padded)),
        (
            "input with a long-form length",
            with(7, vec![0xb8, 0x01, b'x']),
        ),
        (
            "list length with a leading zero",
            typed_from_fields(&fields, true),
        ),
    ];
    for (what, bytes) in cases {
        assert_ne!(bytes, canonical, "{what}");
        let hash = keccak256(&bytes);
        let node = node(raw_node(vec![(hash, bytes)], Vec::new(), |_, v| v)).await;
        let got = inputs_of(&quick(&node), &[hash]).await;
        assert!(
            got.is_err(),
            "{what}: accepted under a non-canonical hash: {got:?}"
        );
    }
}

#[tokio::test]
async fn raw_signatures_encoded_otherwise_hash_otherwise_and_are_refused() {
    use alloy::{
        consensus::{SignableTransaction, TxEnvelope},
        eips::eip2718::Encodable2718,
        primitives::{Signature, U256},
    };
    // secp256k1's group order: (r, n - s, !v) is the same signature, malleated.
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    for kind in [
        Kind::LegacyPre155,
        Kind::Legacy155,
        Kind::Eip2930,
        Kind::Eip1559,
        Kind::Eip7702,
    ] {
        let envelope = envelope_of(kind, b"calldata", 7);
        let (asked, honest_bytes) = signed_kind(kind, b"calldata", 7);
        let mut variants: Vec<(&str, Vec<u8>)> = Vec::new();
        macro_rules! resign {
            ($signed:expr, $variant:expr) => {{
                let sig = *$signed.signature();
                let high_s = Signature::new(sig.r(), n - sig.s(), !sig.v());
                let tx: TxEnvelope = $signed.tx().clone().into_signed(high_s).into();
                variants.push(("high s", tx.encoded_2718()));
                let _ = $variant;
            }};
        }
        match &envelope {
            TxEnvelope::Legacy(s) => {
                resign!(s, ());
                // An EIP-155 transaction's signature re-encoded with v = 27/28 (its chain id
                // dropped), and a pre-155 one with v of chain 31337.
                let mut tx = s.tx().clone();
                tx.chain_id = if tx.chain_id.is_some() {
                    None
                } else {
                    Some(31337)
                };
                let other: TxEnvelope = tx.into_signed(*s.signature()).into();
                variants.push(("v re-encoded", other.encoded_2718()));
            }
            TxEnvelope::Eip2930(s) => resign!(s, ()),
            TxEnvelope::Eip1559(s) => resign!(s, ()),
            TxEnvelope::Eip7702(s) => resign!(s, ()),
            _ => unreachable!(),
        }
        for (what, bytes) in variants {
            assert_ne!(bytes, honest_bytes, "{kind:?} {what}");
            let node = node(raw_node(
                vec![(asked, honest_bytes.clone())],
                Vec::new(),
                move |_, _| json!(hex0x(&bytes)),
            ))
            .await;
            let err = inputs_of(&quick(&node), &[asked]).await.unwrap_err();
            assert!(
                err.to_string().contains("hashing to"),
                "{kind:?} {what}: {err}"
            );
            assert!(full_requests(node.requests()).is_empty(), "{kind:?} {what}");
        }
    }
}

#[tokio::test]
async fn raw_a_known_type_cannot_be_passed_off_as_an_unknown_one_to_get_an_object_asked() {
    // A node answering a real EIP-1559 transaction's hash with bytes of an unknown type
    // (0x05, 0x7e, 0x7f: the fallback that would ask for a forgeable object): refused by the
    // hash, and no object is asked.
    let (asked, honest_bytes) = signed_kind(Kind::Eip1559, b"real approval", 0);
    for ty in [0x05u8, 0x7e, 0x7f] {
        let mut disguised = honest_bytes.clone();
        disguised[0] = ty;
        let forged_object = json!({"hash": format!("{asked:#x}"),
            "to": "0x00000000000000000000000000000000000000bb", "input": "0x66"});
        let node = node(raw_node(
            vec![(asked, honest_bytes.clone())],
            vec![(asked, forged_object)],
            move |_, _| json!(hex0x(&disguised)),
        ))
        .await;
        let err = inputs_of(&quick(&node), &[asked]).await.unwrap_err();
        assert!(err.to_string().contains("hashing to"), "{ty:#x}: {err}");
        assert!(full_requests(node.requests()).is_empty(), "{ty:#x}");
    }
}

#[tokio::test]
async fn raw_type_byte_edges_decode_refuse_or_fall_back_as_they_should() {
    // The test picks each hash (keccak of the bytes) so that only the type logic decides.
    let (_, legacy) = signed_kind(Kind::Legacy155, b"x", 0);
    let (_, eip1559) = signed_kind(Kind::Eip1559, b"x", 0);
    let mut zero_prefixed = vec![0x00];
    zero_prefixed.extend_from_slice(&legacy);
    let mut string_header = legacy.clone();
    let refused_cases: Vec<(&str, Vec<u8>)> = vec![
        // 0x00 || a legacy transaction: type 0 is not a valid EIP-2718 prefix.
        ("0x00 || legacy", zero_prefixed),
        // RLP string headers (0x80..=0xbf) are neither a type nor a legacy list.
        ("0x80", vec![0x80]),
        ("0x81 0x01", vec![0x81, 0x01]),
        ("0xb8 ..", {
            let mut v = vec![0xb8, 0x40];
            v.extend_from_slice(&[0x11; 0x40]);
            v
        }),
        ("0xbf", vec![0xbf]),
        ("legacy list as a string", {
            string_header[0] = 0xb9;
            string_header
        }),
        // A type 2 body under type 1, and a type 2 envelope with its RLP body as a string.
        ("type 1 with a type 2 body", {
            let mut v = eip1559.clone();
            v[0] = 0x01;
            v
        }),
        ("type 4 with a type 2 body", {
            let mut v = eip1559.clone();
            v[0] = 0x04;
            v
        }),
        ("type 3 with a type 2 body", {
            let mut v = eip1559.clone();
            v[0] = 0x03;
            v
        }),
        ("0xc0 (empty list)", vec![0xc0]),
        ("0xff ..", vec![0xff; 12]),
    ];
    for (what, bytes) in refused_cases {
        let hash = keccak256(&bytes);
        let node = node(raw_node(vec![(hash, bytes)], Vec::new(), |_, v| v)).await;
        let err = inputs_of(&quick(&node), &[hash])
            .await
            .expect_err(what)
            .to_string();
        assert!(
            err.contains("does not decode") || err.contains("bytes after"),
            "{what}: {err}"
        );
        assert!(full_requests(node.requests()).is_empty(), "{what}");
    }
    // Unknown types below 0x80 (0x05, 0x7e, 0x7f): asked as an object, once, whose hash must
    // be the asked one; its calldata cannot be checked against the hash, so it is left out
    // (since the fix of F2), never used.
    for ty in [0x05u8, 0x7e, 0x7f] {
        let bytes = vec![ty, 0xc1, 0x01];
        let hash = keccak256(&bytes);
        let right = json!({"hash": format!("{hash:#x}"), "type": format!("{ty:#x}"), "to": null, "input": "0xbeef"});
        let node1 = node(raw_node(
            vec![(hash, bytes.clone())],
            vec![(hash, right)],
            |_, v| v,
        ))
        .await;
        let got = quick(&node1).transaction_inputs(&[hash]).await.unwrap();
        assert!(got.is_empty(), "{ty:#x}: {got:?}");
        assert_eq!(full_requests(node1.requests()).len(), 1, "{ty:#x}");
        let other = json!({"hash": format!("{:#x}", h(5)), "type": format!("{ty:#x}"), "to": null, "input": "0xbeef"});
        let node2 = node(raw_node(vec![(hash, bytes)], vec![(hash, other)], |_, v| v)).await;
        let err = inputs_of(&quick(&node2), &[hash]).await.unwrap_err();
        assert!(
            err.to_string().contains("answered transaction"),
            "{ty:#x}: {err}"
        );
    }
}

#[tokio::test]
async fn raw_odd_hex_is_either_read_exactly_or_refused_never_misread() {
    let (asked, bytes) = signed_kind(Kind::Eip1559, b"hex edge", 0);
    let lower = alloy::primitives::hex::encode(&bytes);
    let upper = lower.to_ascii_uppercase();
    // (answer, whether a right reading is possible)
    let cases: Vec<(Value, bool)> = vec![
        (json!(format!("0x{upper}")), true),
        (json!(format!("0X{lower}")), true),
        (json!(lower.clone()), true),
        (json!(format!("0x{}", &lower[1..])), false),
        (json!(format!("0x{lower}0")), false),
        (json!(format!("0x0{lower}")), false),
        (json!(format!("0x{lower}00")), false),
        (json!(format!("0x00{lower}")), false),
        (json!(format!(" 0x{lower}")), false),
        (json!(format!("0x{lower} ")), false),
        (json!(format!("0x{}", &lower[..lower.len() - 2])), false),
        (json!("0x"), false),
        (json!(""), false),
        (json!("0xzz"), false),
        (json!(format!("0x{lower}").replace('a', "\u{0430}")), false),
    ];
    for (answer, may_read) in cases {
        let a = answer.clone();
        let node = node(raw_node(
            vec![(asked, bytes.clone())],
            Vec::new(),
            move |_, _| a.clone(),
        ))
        .await;
        if let Ok(got) = inputs_of(&quick(&node), &[asked]).await {
            assert!(may_read, "{answer}: accepted");
            assert_eq!(got[0].1, b"hex edge", "{answer}: misread");
        }
        assert!(full_requests(node.requests()).is_empty(), "{answer}");
    }
}

#[tokio::test]
async fn raw_huge_answers_are_capped_and_honest_large_calldata_is_read() {
    // 128 KiB of calldata (the most a node accepts): read, under the default cap.
    let calldata = vec![0x5a; 128 << 10];
    let (big, big_bytes) = signed_kind(Kind::Eip1559, &calldata, 0);
    let node1 = node(raw_node(
        vec![(big, big_bytes.clone())],
        Vec::new(),
        |_, v| v,
    ))
    .await;
    let got = inputs_of(&quick(&node1), &[big]).await.unwrap();
    assert_eq!(got[0].1, calldata);
    // A 3 MiB hex answer under a 1 MiB cap: refused before it is parsed, no object asked.
    let junk = json!(format!("0x{}", "ab".repeat(3 << 19)));
    let node2 = node(raw_node(vec![(big, big_bytes)], Vec::new(), move |_, _| {
        junk.clone()
    }))
    .await;
    let rpc = quick(&node2).with_max_response_bytes(1 << 20);
    let started = Instant::now();
    let err = inputs_of(&rpc, &[big]).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(full_requests(node2.requests()).is_empty());
}

#[tokio::test]
async fn raw_batches_with_bad_ids_counts_or_json_types_are_refused_and_keep_raw() {
    let txs: Vec<(B256, Vec<u8>)> = (0..3)
        .map(|i| signed_kind(Kind::Eip1559, &[i as u8 + 1; 4], i))
        .collect();
    let hashes: Vec<B256> = txs.iter().map(|(h, _)| *h).collect();
    type Tamper = Box<dyn Fn(&mut Vec<Value>) + Send + Sync>;
    let attacks: Vec<(&str, Tamper)> = vec![
        (
            "ids as strings",
            Box::new(|items| items[0]["id"] = json!("0")),
        ),
        ("hex ids", Box::new(|items| items[1]["id"] = json!("0x1"))),
        ("duplicate id", Box::new(|items| items[2]["id"] = json!(0))),
        (
            "absent id",
            Box::new(|items| {
                items[2].as_object_mut().unwrap().remove("id");
            }),
        ),
        (
            "id out of range",
            Box::new(|items| items[2]["id"] = json!(3)),
        ),
        (
            "fewer answers",
            Box::new(|items| {
                items.pop();
            }),
        ),
        (
            "more answers",
            Box::new(|items| {
                let extra = items[0].clone();
                items.push(extra);
            }),
        ),
        (
            "an object among hex answers",
            Box::new(|items| {
                items[1]["result"] =
                    json!({"hash": items[1]["result"], "to": null, "input": "0x01"})
            }),
        ),
        (
            "bytes as an array",
            Box::new(|items| items[1]["result"] = json!([1, 2, 3])),
        ),
        (
            "an error among results",
            Box::new(|items| {
                items[1] =
                    json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "busy"}})
            }),
        ),
        (
            "-32601 as a string code",
            Box::new(|items| {
                items[1] =
                    json!({"jsonrpc": "2.0", "id": 1, "error": {"code": "-32601", "message": "no"}})
            }),
        ),
        (
            "-32601 as a float",
            Box::new(|items| {
                items[1] =
                    json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601.0, "message": "no"}})
            }),
        ),
        (
            "null result",
            Box::new(|items| items[2]["result"] = Value::Null),
        ),
    ];
    for (what, tamper) in attacks {
        let node = node(raw_batch_tampered(
            txs.clone(),
            Vec::new(),
            move |_, items| tamper(items),
        ))
        .await;
        let rpc = quick(&node);
        let err = inputs_of(&rpc, &hashes).await.expect_err(what);
        // Every retry asked the raw method again (no downgrade), and no object was asked.
        let requests = node.requests();
        assert_eq!(raw_requests(requests.clone()).len(), 3, "{what}: {err}");
        assert!(full_requests(requests).is_empty(), "{what}");
    }
}

#[tokio::test]
async fn raw_transactions_asked_twice_and_out_of_order_answers_are_filed_under_their_hashes() {
    let txs: Vec<(B256, Vec<u8>)> = (0..150)
        .map(|i| {
            signed_kind(
                ALL_KINDS[i % ALL_KINDS.len()],
                &(i as u32).to_be_bytes(),
                i as u64,
            )
        })
        .collect();
    let node = node(raw_batch_tampered(txs.clone(), Vec::new(), |_, items| {
        items.reverse()
    }))
    .await;
    let mut hashes: Vec<B256> = txs.iter().map(|(h, _)| *h).collect();
    hashes.extend(hashes.clone());
    let got = inputs_of(&quick(&node), &hashes).await.unwrap();
    for (i, (_, input)) in got.iter().enumerate() {
        assert_eq!(input, &((i % 150) as u32).to_be_bytes(), "{i}");
    }
    assert_eq!(raw_requests(node.requests()).len(), 2);
    assert!(full_requests(node.requests()).is_empty());
}

#[tokio::test]
async fn raw_a_node_without_either_method_or_hanging_on_the_fallback_is_bounded() {
    // "method not found" to everything: the client gives up after its attempts, a bounded
    // number of requests.
    let node1 = node(|_, request| {
        let item = |c: &Value| {
            json!({"jsonrpc": "2.0", "id": c["id"],
            "error": {"code": -32601, "message": "no such method"}})
        };
        let body = match request {
            Value::Array(calls) => Value::Array(calls.iter().map(item).collect()),
            call => item(call),
        };
        Reply::Http(200, body.to_string())
    })
    .await;
    let rpc1 = quick(&node1);
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        rpc1.transaction_inputs(&[h(1), h(2)]),
    )
    .await
    .expect("hung");
    assert!(result.is_err());
    assert!(node1.requests().len() <= 4, "{:?}", node1.requests());
    // An unknown type whose object call never answers: ended by the timeout, per attempt.
    let bytes = vec![0x7e, 0xc0];
    let hash = keccak256(&bytes);
    let raw = raw_node(vec![(hash, bytes)], Vec::new(), |_, v| v);
    let node2 = node(move |n, request| match request {
        Value::Object(_) => Reply::Hang,
        _ => raw(n, request),
    })
    .await;
    let rpc2 = rpc(vec![node2.url.clone()], 2, Duration::from_millis(300));
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), rpc2.transaction_inputs(&[hash]))
        .await
        .expect("hung");
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

// FOUND (fixed): one item answered "method not found" (-32601) in a batch whose other items are valid
// `eth_getRawTransactionByHash` results (the endpoint plainly has the method: a load balancer
// with one stale backend, or a node choosing to) switches the endpoint to
// `eth_getTransactionByHash` for good (`no_raw`, never reset): from then on its calldata is
// taken from objects checked only by their self-declared `hash`, and this node forges them.
// `parse_batch` returns `NoMethod` on the first -32601 item whatever the others say.
#[tokio::test]
async fn raw_one_method_not_found_item_among_raw_results_does_not_downgrade_the_endpoint() {
    let txs: Vec<(B256, Vec<u8>)> = (0..4)
        .map(|i| signed_kind(Kind::Eip1559, format!("approval {i}").as_bytes(), i))
        .collect();
    let hashes: Vec<B256> = txs.iter().map(|(h, _)| *h).collect();
    let forged: Vec<(B256, Value)> = hashes
        .iter()
        .map(|h| {
            (
                *h,
                json!({"hash": format!("{h:#x}"), "to": null, "input": "0x666f72676564"}),
            )
        })
        .collect();
    let node = node(raw_batch_tampered(txs, forged, |n, items| {
        if n == 0 {
            items[1] = json!({"jsonrpc": "2.0", "id": items[1]["id"],
                "error": {"code": -32601, "message": "the method does not exist"}});
        }
    }))
    .await;
    let rpc = quick(&node);
    let first = inputs_of(&rpc, &hashes[..2]).await;
    let later = inputs_of(&rpc, &hashes[2..]).await;
    for (i, got) in first.iter().chain(later.iter()).flatten().enumerate() {
        assert_eq!(
            got.1,
            format!("approval {i}").as_bytes(),
            "forged calldata accepted"
        );
    }
    assert!(
        full_requests(node.requests()).is_empty(),
        "an endpoint that answers eth_getRawTransactionByHash was downgraded: {:?}",
        node.requests()
    );
}

// FOUND (fixed): any node switches the client to the unverified path by answering the raw method
// "method not found" (-32601), and then has its forged calldata accepted for a transaction of
// a known type — although its own `eth_getTransactionByHash` object carries every signed
// field (type, chainId, nonce, gas, fees, to, value, accessList, input, r, s, yParity) from
// which the client could re-encode the transaction and check that it hashes to the asked hash.
// Only the object's self-declared `hash` is compared (`WireTransaction::checked`), so the
// commit's "a node can no longer forge or swap calldata" holds only for nodes that do not
// say -32601.
#[tokio::test]
async fn raw_method_not_found_does_not_let_a_node_forge_a_known_type_transactions_calldata() {
    let (asked, _) = signed_kind(Kind::Eip1559, b"real approval", 3);
    // The real transaction's object, with a forged input (and its real hash).
    let forged = full_object_1559(&asked, b"real approval", 3, b"forged approval");
    let honest = full_object_1559(&asked, b"real approval", 3, b"real approval");
    let f = forged.clone();
    let node = node(move |_, request| {
        let item = |c: &Value| match c["method"].as_str().unwrap() {
            "eth_getRawTransactionByHash" => json!({"jsonrpc": "2.0", "id": c["id"],
                "error": {"code": -32601, "message": "the method does not exist"}}),
            _ => json!({"jsonrpc": "2.0", "id": c["id"], "result": f}),
        };
        let body = match request {
            Value::Array(calls) => Value::Array(calls.iter().map(item).collect()),
            call => item(call),
        };
        Reply::Http(200, body.to_string())
    })
    .await;
    // The check is possible: the object read with alloy's own RPC type, re-encoded and
    // re-hashed (not trusting its `hash` field), gives the asked hash for the honest object
    // and another one for the forged object.
    let rehash = |object: &Value| {
        use alloy::eips::eip2718::Encodable2718;
        let mut o = object.clone();
        o["from"] = json!(format!("{:#x}", alloy::primitives::Address::ZERO));
        let tx: alloy::rpc::types::Transaction = serde_json::from_value(o).unwrap();
        keccak256(tx.inner.into_inner().encoded_2718())
    };
    assert_eq!(rehash(&honest), asked);
    assert_ne!(rehash(&forged), asked);
    let got = inputs_of(&quick(&node), &[asked]).await;
    assert!(
        !matches!(&got, Ok(v) if v[0].1 == b"forged approval"),
        "forged calldata accepted for a known-type transaction: {got:?}"
    );
}

// FOUND (fixed: an object answer counts as "no batches" only when its error is -32600 or
// names batches, and objects are re-encoded and re-hashed): one object answered to a raw
// batch — under HTTP 200 or 400, whatever it says: a
// rate limit (-32005), an internal error, or "method not found" for the whole batch — sets the
// endpoint's `no_batches` for good, and `inputs_one_by_one` asks only
// `eth_getTransactionByHash`: a single transient answer (from the node or any proxy in front of
// it) permanently turns off the raw-bytes verification for that endpoint, for every later
// transaction, though the endpoint answers `eth_getRawTransactionByHash` (here to single calls,
// too) and its objects are forged.
#[tokio::test]
async fn raw_one_object_answer_to_a_batch_does_not_turn_off_raw_verification_for_good() {
    let txs: Vec<(B256, Vec<u8>)> = (0..4)
        .map(|i| signed_kind(Kind::Eip1559, format!("approval {i}").as_bytes(), i))
        .collect();
    let hashes: Vec<B256> = txs.iter().map(|(h, _)| *h).collect();
    let forged: Vec<(B256, Value)> = hashes
        .iter()
        .map(|h| {
            (
                *h,
                json!({"hash": format!("{h:#x}"), "to": null, "input": "0x666f72676564"}),
            )
        })
        .collect();
    let inner = raw_node(txs, forged, |_, v| v);
    let node = node(move |n, request| match request {
        Value::Array(_) if n == 0 => Reply::Http(
            200,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"rate limited, retry later"}}"#
                .into(),
        ),
        _ => inner(n, request),
    })
    .await;
    let rpc = quick(&node);
    let first = inputs_of(&rpc, &hashes[..2]).await;
    let later = inputs_of(&rpc, &hashes[2..]).await;
    for (i, got) in first.iter().chain(later.iter()).flatten().enumerate() {
        assert_eq!(
            got.1,
            format!("approval {i}").as_bytes(),
            "forged calldata accepted"
        );
    }
    assert!(
        raw_requests(node.requests()).len() > 1,
        "the raw method never asked again after one object answer: {:?}",
        node.requests()
    );
}

#[tokio::test]
async fn raw_method_not_found_on_one_endpoint_leaves_the_others_on_raw() {
    let (a, a_bytes) = signed_kind(Kind::Eip1559, b"approval", 0);
    // The first endpoint: no raw method, and it does not know the transaction.
    let without = node(|_, request| {
        let item = |c: &Value| match c["method"].as_str().unwrap() {
            "eth_getRawTransactionByHash" => json!({"jsonrpc": "2.0", "id": c["id"],
                "error": {"code": -32601, "message": "the method does not exist"}}),
            _ => json!({"jsonrpc": "2.0", "id": c["id"], "result": null}),
        };
        let body = match request {
            Value::Array(calls) => Value::Array(calls.iter().map(item).collect()),
            call => item(call),
        };
        Reply::Http(200, body.to_string())
    })
    .await;
    let honest = node(raw_node(vec![(a, a_bytes)], Vec::new(), |_, v| v)).await;
    let rpc = rpc(
        vec![without.url.clone(), honest.url.clone()],
        3,
        Duration::from_secs(5),
    );
    assert_eq!(inputs_of(&rpc, &[a]).await.unwrap()[0].1, b"approval");
    assert!(full_requests(honest.requests()).is_empty());
    assert_eq!(raw_requests(honest.requests()).len(), 1);
}

/// An endpoint's "no raw method" mark lapses (`Rpc::with_recheck_after`): once it has, the
/// endpoint is asked the raw way again; while it holds, it is asked for objects directly.
#[tokio::test]
async fn a_no_raw_mark_lapses_and_the_endpoint_is_asked_raw_again() {
    use alloy::eips::eip2718::Encodable2718;
    let txs: Vec<(B256, Vec<u8>, Value)> = (0..4)
        .map(|i| {
            let (hash, object) = numbered(i);
            let bytes = envelope_of(Kind::Eip1559, &i.to_be_bytes(), i).encoded_2718();
            (hash, bytes, object)
        })
        .collect();
    let serve = || {
        let inner = raw_node(
            txs.iter().map(|(h, b, _)| (*h, b.clone())).collect(),
            txs.iter().map(|(h, _, o)| (*h, o.clone())).collect(),
            |_, v| v,
        );
        // The first request only: "method not found" for every raw call.
        move |n: usize, request: &Value| match request {
            Value::Array(calls) if n == 0 => Reply::Http(
                200,
                Value::Array(calls.iter().map(honest_item).collect()).to_string(),
            ),
            _ => inner(n, request),
        }
    };
    let hashes: Vec<B256> = txs.iter().map(|(h, _, _)| *h).collect();
    for (lasting, raw_again) in [(Duration::ZERO, true), (Duration::from_secs(600), false)] {
        let node = node(serve()).await;
        let rpc = quick(&node).with_recheck_after(lasting);
        fetch_checked(&rpc, &hashes[..2]).await.unwrap();
        fetch_checked(&rpc, &hashes[2..]).await.unwrap();
        let requests = node.requests();
        let last = requests.last().unwrap().as_array().unwrap()[0]["method"].clone();
        assert_eq!(
            last == "eth_getRawTransactionByHash",
            raw_again,
            "lasting {lasting:?}: {requests:?}"
        );
    }
}
