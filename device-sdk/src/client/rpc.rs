//! The RPC transport: what the client asks an Ethereum endpoint, behind a trait so tests can
//! inject lying endpoints, and a JSON-RPC over HTTP implementation with bounded responses.
//!
//! Nothing an endpoint returns is trusted: headers are re-hashed and voted on (step 1), proofs
//! are verified against the voted state root (step 2). The transport only has to bound how much
//! it reads.

use std::{future::Future, pin::Pin, time::Duration};

use alloy_primitives::{Address, B256, Bytes, U64, U256};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    head::RawHeader,
    state::{AccountProof, StorageProof},
};

/// Largest JSON-RPC response body read: 1 MiB. An update check's largest answer, a proof of four
/// slots, is about 10 KiB; the bound stops an endpoint from streaming without end.
pub const MAX_RESPONSE_SIZE: usize = 1 << 20;

/// Default timeout of one JSON-RPC call: 10 s.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// A transport's answer: the value, or why there is none (untrusted text, for logs and errors).
pub type RpcFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// An Ethereum endpoint, as the update check uses it.
pub trait Rpc: Send + Sync {
    /// The endpoint's latest block number (`eth_blockNumber`).
    fn block_number(&self) -> RpcFuture<'_, u64>;

    /// Block `number`'s header, RLP-encoded, and the hash the endpoint claims for it.
    fn header(&self, number: u64) -> RpcFuture<'_, RawHeader>;

    /// `eth_getProof(address, slots, number)`.
    fn proof(&self, address: Address, slots: Vec<B256>, number: u64)
    -> RpcFuture<'_, AccountProof>;
}

/// JSON-RPC over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpRpc {
    url: reqwest::Url,
    http: reqwest::Client,
    max_response: usize,
}

impl HttpRpc {
    /// An endpoint at `url` with the default timeout and response bound.
    pub fn new(url: reqwest::Url) -> Result<Self, String> {
        Self::with_limits(url, DEFAULT_RPC_TIMEOUT, MAX_RESPONSE_SIZE)
    }

    /// An endpoint with an explicit per-call timeout and response bound.
    pub fn with_limits(
        url: reqwest::Url,
        timeout: Duration,
        max_response: usize,
    ) -> Result<Self, String> {
        let http = super::shared_client(timeout, true)?;
        Ok(Self {
            url,
            http,
            max_response,
        })
    }

    /// The endpoint's origin (`scheme://host:port`), for errors and logs: never the path, query
    /// or user info, which can hold an API key.
    pub fn origin(&self) -> String {
        super::origin(&self.url)
    }

    /// One call: the `result` of the response, read up to the response bound.
    pub(super) async fn call(&self, method: &'static str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{method}: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("{method}: http status {}", response.status()));
        }
        if let Some(len) = response.content_length()
            && len > self.max_response as u64
        {
            return Err(format!(
                "{method}: response of {len} bytes exceeds {}",
                self.max_response
            ));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{method}: {}", e.without_url()))?
        {
            if bytes.len() + chunk.len() > self.max_response {
                return Err(format!(
                    "{method}: response exceeds {} bytes",
                    self.max_response
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let mut reply: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("{method}: invalid json: {e}"))?;
        if let Some(error) = reply.get("error") {
            return Err(format!("{method}: endpoint error {error}"));
        }
        match reply.get_mut("result").map(Value::take) {
            Some(Value::Null) | None => Err(format!("{method}: no result")),
            Some(result) => Ok(result),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(method: &str, value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("{method}: unexpected result: {e}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProofJson {
    address: Address,
    balance: U256,
    nonce: U64,
    code_hash: B256,
    storage_hash: B256,
    account_proof: Vec<Bytes>,
    storage_proof: Vec<StorageJson>,
}

#[derive(Deserialize)]
struct StorageJson {
    // Some nodes answer the key as a quantity, others as 32 bytes.
    key: U256,
    value: U256,
    proof: Vec<Bytes>,
}

impl Rpc for HttpRpc {
    fn block_number(&self) -> RpcFuture<'_, u64> {
        Box::pin(async move {
            let n: U64 = parse(
                "eth_blockNumber",
                self.call("eth_blockNumber", json!([])).await?,
            )?;
            Ok(n.to::<u64>())
        })
    }

    fn header(&self, number: u64) -> RpcFuture<'_, RawHeader> {
        Box::pin(async move {
            const METHOD: &str = "eth_getBlockByNumber";
            let block = self.call(METHOD, json!([U64::from(number), false])).await?;
            // The node's `hash` is kept only as its claim: step 1 recomputes the hash from the
            // fields (re-encoded here as RLP) and refuses the answer if they differ.
            let claimed_hash: B256 =
                parse(METHOD, block.get("hash").cloned().unwrap_or(Value::Null))?;
            let header: alloy_consensus::Header = parse(METHOD, block)?;
            Ok(RawHeader {
                claimed_hash,
                rlp: alloy_rlp::encode(&header),
            })
        })
    }

    fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        number: u64,
    ) -> RpcFuture<'_, AccountProof> {
        Box::pin(async move {
            const METHOD: &str = "eth_getProof";
            let p: ProofJson = parse(
                METHOD,
                self.call(METHOD, json!([address, slots, U64::from(number)]))
                    .await?,
            )?;
            Ok(AccountProof {
                address: p.address,
                balance: p.balance,
                nonce: p.nonce.to::<u64>(),
                code_hash: p.code_hash,
                storage_hash: p.storage_hash,
                account_proof: p.account_proof,
                storage_proof: p
                    .storage_proof
                    .into_iter()
                    .map(|s| StorageProof {
                        key: B256::from(s.key),
                        value: s.value,
                        proof: s.proof,
                    })
                    .collect(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// A one-connection HTTP server on 127.0.0.1 that answers every request with `head` + `body`.
    async fn serve(head: &'static str, body: Vec<u8>) -> reqwest::Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            }
        });
        url.parse().unwrap()
    }

    fn rpc(url: reqwest::Url) -> HttpRpc {
        HttpRpc::with_limits(url, Duration::from_secs(5), 1024).unwrap()
    }

    /// A provider's API key usually sits in the URL's path: a transport error must not carry it
    /// into logs and reports.
    #[tokio::test]
    async fn transport_errors_do_not_carry_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url: reqwest::Url = format!("http://127.0.0.1:{port}/v3/secret-api-key")
            .parse()
            .unwrap();
        let err = rpc(url.clone()).block_number().await.unwrap_err();
        assert!(!err.contains("secret-api-key"), "{err}");
        assert_eq!(rpc(url).origin(), format!("http://127.0.0.1:{port}"));
    }

    #[tokio::test]
    async fn responses_are_read_up_to_the_bound() {
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":"0x2a"}"#.to_vec();
        let url = serve("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", ok).await;
        assert_eq!(rpc(url).block_number().await.unwrap(), 42);

        // No length announced, the body just keeps going: cut off at the bound.
        let mut endless = br#"{"jsonrpc":"2.0","id":1,"result":""#.to_vec();
        endless.extend(std::iter::repeat_n(b'0', 64 * 1024));
        let url = serve("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", endless).await;
        let err = rpc(url).block_number().await.unwrap_err();
        assert!(err.contains("exceeds 1024 bytes"), "{err}");

        // An announced length above the bound is refused before reading.
        let url = serve(
            "HTTP/1.1 200 OK\r\ncontent-length: 100000\r\nconnection: close\r\n\r\n",
            vec![b' '; 10],
        )
        .await;
        let err = rpc(url).block_number().await.unwrap_err();
        assert!(err.contains("response of 100000 bytes"), "{err}");
    }

    #[tokio::test]
    async fn errors_and_missing_results_are_refused() {
        let url = serve(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#.to_vec(),
        )
        .await;
        assert!(
            rpc(url)
                .block_number()
                .await
                .unwrap_err()
                .contains("endpoint error")
        );
        let url = serve(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            br#"{"jsonrpc":"2.0","id":1,"result":null}"#.to_vec(),
        )
        .await;
        assert!(rpc(url).header(1).await.unwrap_err().contains("no result"));
        let url = serve(
            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n",
            vec![],
        )
        .await;
        assert!(rpc(url).block_number().await.unwrap_err().contains("503"));
    }
}
