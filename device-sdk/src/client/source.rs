//! Where the manifest and approval of a release come from. They are untrusted wherever they come
//! from: [`crate::client::Client::check`] accepts them only if the manifest hashes to a release
//! id whose release word is proven, and the approval's signatures recover to the proven signer
//! set. A source can at worst withhold a release (the device then reports nothing newer than it
//! could check: [`crate::Error::ReleaseUnavailable`]); the updater asks the next source when one's
//! answer is refused ([`crate::client::Updater::run_once`]).
//!
//! [`HttpRpc`] is a source: it finds the `ReleasePublished` log of (model, version) with
//! `eth_getLogs` and decodes the manifest and approval from the publishing transaction's
//! calldata (`publishRelease(manifest, approval)`). [`super::IndexerSource`] asks the indexer's
//! `GET /v1/models/<model>/releases/<version>` (one bounded request instead of a log search
//! from block 0). Other sources (a file) implement the same trait.
//!
//! A source refuses an answer that is not for the (registry, model, version) asked
//! ([`SourceError::WrongRelease`], [`SourceError::WrongRegistry`]) before the pipeline sees it,
//! so the refusal names the source and the lie.

use std::{future::Future, pin::Pin};

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::{SolCall, SolEvent};
use serde::Deserialize;
use serde_json::json;

use super::HttpRpc;
use crate::{
    Approval, Manifest,
    contracts::registry::UpdateRegistry::{ReleasePublished, publishReleaseCall},
};

/// A source's answer.
pub type SourceFuture<'a> = Pin<
    Box<dyn Future<Output = std::result::Result<(Manifest, Approval), SourceError>> + Send + 'a>,
>;

/// Why a source gave no usable answer. The updater logs it and asks the next source; when no
/// source answers, the reasons are joined in [`crate::Error::ReleaseUnavailable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source does not have the release (a 404, no `ReleasePublished` log).
    #[error("{source_name} has no release {version} of model {model_id}: {reason}")]
    NotFound {
        /// Which source (URL or kind).
        source_name: String,
        /// The model asked for.
        model_id: u32,
        /// The version asked for.
        version: u64,
        /// What the source said.
        reason: String,
    },
    /// The source could not be asked: connection refused, an error status, a transport error.
    #[error("{source_name} is unavailable: {reason}")]
    Unavailable {
        /// Which source.
        source_name: String,
        /// What failed.
        reason: String,
    },
    /// The source did not answer within its timeout (a slow-retrieval attack on the
    /// release lookup).
    #[error("{source_name} gave no answer within {timeout:?}")]
    Timeout {
        /// Which source.
        source_name: String,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// The answer is longer than the source's bound (endless data); it was not read past the
    /// bound.
    #[error("{source_name} sent more than {max} bytes (announced: {announced:?})")]
    TooLarge {
        /// Which source.
        source_name: String,
        /// The bound.
        max: usize,
        /// The `Content-Length` the source announced, if any.
        announced: Option<u64>,
    },
    /// The answer does not decode (not JSON, a missing field, an ABI encoding that is not a
    /// manifest or an approval).
    #[error("{source_name} sent an undecodable answer: {reason}")]
    Malformed {
        /// Which source.
        source_name: String,
        /// What the decoder said.
        reason: String,
    },
    /// The answer is another release than the one asked for (mix-and-match, rollback: a
    /// manifest of another model or version, or a release id that is not the manifest's).
    #[error(
        "{source_name} answered {answered} for release {requested_version} of model {requested_model}"
    )]
    WrongRelease {
        /// Which source.
        source_name: String,
        /// The model asked for.
        requested_model: u32,
        /// The version asked for.
        requested_version: u64,
        /// What it answered instead.
        answered: String,
    },
    /// The answer is for another deployment (chain id or registry) than the device's.
    #[error("{source_name} answers for {answered}, the device asked about {requested}")]
    WrongRegistry {
        /// Which source.
        source_name: String,
        /// The device's chain id and registry.
        requested: String,
        /// The ones the answer names.
        answered: String,
    },
}

/// Finds the manifest and approval of a release.
pub trait ReleaseSource: Send + Sync {
    /// The release `version` of `model_id` in `registry`.
    fn release(&self, registry: Address, model_id: u32, version: u64) -> SourceFuture<'_>;
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson {
    transaction_hash: B256,
}

#[derive(Deserialize)]
struct TxJson {
    input: Bytes,
}

/// How many logs of one (model, version) are looked at: a version is published once per
/// registry, so more means a lying endpoint.
const MAX_LOGS: usize = 4;

impl ReleaseSource for HttpRpc {
    fn release(&self, registry: Address, model_id: u32, version: u64) -> SourceFuture<'_> {
        let name = || format!("rpc {}", self.origin());
        let unavailable = move |reason: String| SourceError::Unavailable {
            source_name: name(),
            reason,
        };
        let malformed = move |reason: String| SourceError::Malformed {
            source_name: name(),
            reason,
        };
        Box::pin(async move {
            let topics = json!([
                ReleasePublished::SIGNATURE_HASH,
                null,
                B256::left_padding_from(&model_id.to_be_bytes()),
                B256::left_padding_from(&version.to_be_bytes()),
            ]);
            let logs = self
                .call(
                    "eth_getLogs",
                    json!([{"address": registry, "fromBlock": "0x0", "toBlock": "latest", "topics": topics}]),
                )
                .await
                .map_err(unavailable)?;
            let logs: Vec<LogJson> = serde_json::from_value(logs)
                .map_err(|e| malformed(format!("eth_getLogs: unexpected result: {e}")))?;
            if logs.is_empty() {
                return Err(SourceError::NotFound {
                    source_name: name(),
                    model_id,
                    version,
                    reason: "no ReleasePublished log".into(),
                });
            }
            let mut last = String::new();
            for log in logs.iter().take(MAX_LOGS) {
                let tx = self
                    .call("eth_getTransactionByHash", json!([log.transaction_hash]))
                    .await
                    .map_err(unavailable)?;
                let tx: TxJson = serde_json::from_value(tx).map_err(|e| {
                    malformed(format!("eth_getTransactionByHash: unexpected result: {e}"))
                })?;
                match publishReleaseCall::abi_decode(&tx.input) {
                    Ok(call)
                        if call.manifest.modelId == model_id
                            && call.manifest.version == version =>
                    {
                        return Ok((call.manifest, call.approval));
                    }
                    Ok(_) => last = "the transaction publishes another release".into(),
                    Err(e) => {
                        last = format!(
                            "transaction {} is not a direct publishRelease call: {e}",
                            log.transaction_hash
                        )
                    }
                }
            }
            Err(SourceError::NotFound {
                source_name: name(),
                model_id,
                version,
                reason: last,
            })
        })
    }
}
